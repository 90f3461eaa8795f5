"""FER2013 as Kaggle's ``fer2013.csv``: emotion (0-6), pixels (2304 values), Usage.

Usage maps to splits: Training -> train, PublicTest -> val, PrivateTest -> test (the public
test set was the challenge's validation board; the private one its final test).
Images are written as lossless 48x48 grayscale PNGs named ``<Usage>_<row>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fer_keras.labels import FER2013_CODES

from .common import DatasetWriter, ImportFormatError, parse_pixels, require_columns

NAME = "fer2013_csv"
USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def row_where(file: Path, row: int) -> str:
    """'file: row 3 (line 5)': data rows count from 0, file lines from 1 with the header."""
    return f"{file}: row {row} (line {row + 2})"


def label_code(value: str, codes: dict, where: str, key: str) -> int:
    """Integer label code, or an error naming the place (file, row/line) and the value."""
    try:
        code = int(float(value))
        if code != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ImportFormatError(f"{where}: {key} {value!r} is not an integer code") from None
    if code not in codes:
        raise ImportFormatError(f"{where}: unknown {key} code {code} (known: {sorted(codes)})")
    return code


def read_fer_csv(src: Path) -> pd.DataFrame:
    if not src.is_file():
        raise FileNotFoundError(f"FER2013 CSV not found: {src}")
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]  # the ICML copy has " Usage", " pixels"
    require_columns(df, ["emotion", "pixels", "Usage"], src)
    return df


def run(src: Path, dst: Path, *, force: bool = False) -> DatasetWriter:
    df = read_fer_csv(src)
    jobs = []  # parse every row before writing anything: a bad row leaves no half import
    for row, (emotion, pixels, usage) in enumerate(
            zip(df["emotion"], df["pixels"], df["Usage"], strict=True)):
        code = label_code(emotion, FER2013_CODES, row_where(src, row), "emotion")
        split = usage_split(usage, src, row)
        jobs.append((parse_pixels(pixels, row, src), split, FER2013_CODES[code],
                     f"{usage.strip()}_{row:05d}.png"))
    w = DatasetWriter(dst, NAME, src, force=force)
    for args in jobs:
        w.add_array(*args)
    return w


def usage_split(usage: str, file: Path, row: int) -> str:
    split = USAGE_SPLITS.get(usage.strip())
    if split is None:
        raise ImportFormatError(f"{row_where(file, row)}: unknown Usage {usage!r} "
                                f"(known: {list(USAGE_SPLITS)})")
    return split


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path, help="fer2013.csv")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, force=a.force)
