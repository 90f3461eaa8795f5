"""JAFFE (Lyons et al. 1998): 213 TIFFs named ``<poser>.<expr><n>.<id>.tiff``, e.g. KA.AN1.39.tiff.

Expression codes AN, DI, FE, HA, NE, SA, SU. TIFF is not read by Keras' folder readers, so
images are re-encoded to PNG. The BTFER paper used JAFFE as a test set: default split test.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from fer_keras.data.image_types import is_image
from fer_keras.labels import canonical_name

from .common import DatasetWriter, ImportFormatError

NAME = "jaffe"
PATTERN = re.compile(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d*)\.(\d+)\.(tiff?|png|jpe?g|bmp)$",
                     re.IGNORECASE)
CODES = {"AN", "DI", "FE", "HA", "NE", "SA", "SU"}


def parse_name(path: Path) -> str:
    """Canonical class from a JAFFE file name; error naming the file otherwise."""
    m = PATTERN.match(path.name)
    if not m:
        raise ImportFormatError(f"{path}: not a JAFFE name like KA.AN1.39.tiff")
    code = m.group(2).upper()
    if code not in CODES:
        raise ImportFormatError(f"{path}: unknown expression code {code!r} "
                                f"(known: {', '.join(sorted(CODES))})")
    return canonical_name(code)


def run(src: Path, dst: Path, *, split: str = "test", force: bool = False,
        skip_bad: bool = False) -> DatasetWriter:
    if not src.is_dir():
        raise FileNotFoundError(f"JAFFE folder not found: {src}")
    files = sorted(p for p in src.rglob("*") if p.is_file() and is_image(p, convertible=True))
    if not files:
        raise ImportFormatError(f"no images under {src}")
    labels = [(f, parse_name(f)) for f in files]  # validate every name before writing
    w = DatasetWriter(dst, NAME, src, force=force, skip_bad=skip_bad)
    for f, label in labels:
        w.add_file(f, split, label)
    return w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path, help="folder of JAFFE .tiff files")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, split=a.split, force=a.force, skip_bad=a.skip_bad)
