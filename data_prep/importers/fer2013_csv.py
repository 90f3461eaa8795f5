"""FER2013 as Kaggle's ``fer2013.csv``: emotion (0-6), pixels (2304 values), Usage.

Usage maps to splits: Training -> train, PublicTest -> val, PrivateTest -> test (the public
test set was the challenge's validation board; the private one its final test).
Images are written as lossless 48x48 grayscale PNGs named ``<Usage>_<row>.png``. The rows
are parsed by the trainer's own FER2013 reader, so both accept and reject the same files;
blank images (a single colour) are skipped as the trainer skips them, and listed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_keras.data.readers import DatasetError, blank_rows_note, parse_fer2013_csv

from .common import DatasetWriter

NAME = "fer2013_csv"
BLANK = "blank image (a single colour)"


def run(src: Path, dst: Path, *, force: bool = False) -> DatasetWriter:
    rows = parse_fer2013_csv(src)  # every row validated before anything is written
    blank = [r for r in rows if r.blank]
    if len(blank) == len(rows):
        raise DatasetError(f"{src} has no usable rows" + (f": {blank_rows_note(blank)}" if rows else ""))
    w = DatasetWriter(dst, NAME, src, force=force)
    for r in rows:
        if r.blank:
            w.drop(BLANK, where=r.where)
        else:
            w.add_array(r.pixels, r.split, r.label, f"{r.usage}_{r.row:05d}.png")
    return w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path, help="fer2013.csv")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, force=a.force)
