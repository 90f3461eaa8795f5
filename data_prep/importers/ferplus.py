"""FER+ (Barsoum et al. 2016): ten crowd votes per FER2013 image in ``fer2013new.csv``.

``fer2013new.csv`` (Usage, Image name, neutral, happiness, surprise, sadness, anger,
disgust, fear, contempt, unknown, NF) has one row per row of ``fer2013.csv``, in the same
order; the pixels come from that file (``--fer2013``) or from the FER+ image folders
(``--images``, files looked up by "Image name" directly or under FER2013Train/Valid/Test).

Label rule (documented decision): the column with the most votes wins. A sample is dropped
when the winner is unknown or NF, when the winner's share of all votes is not above
``min_share`` (default 0: plain plurality; 0.5 asks for more than half the votes), or
when two emotions tie for the most votes (``ties="drop"``, default; ``ties="first"`` keeps
the first in FER+ column order, which favours neutral). Contempt is dropped unless asked
for. Rows with an empty image name (removed by FER+) are skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fer_keras.data.readers import FER2013_USAGE, csv_row_where, fer2013_usage, parse_fer2013_csv
from fer_keras.labels import FERPLUS_COLUMNS, canonical_name

from .common import DatasetWriter, ImportFormatError, require_columns

NAME = "ferplus"
IMAGE_DIRS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid",
              "PrivateTest": "FER2013Test"}


def vote(votes: np.ndarray, *, ties: str = "drop",
         min_share: float = 0.0) -> tuple[str | None, str]:
    """Canonical label of one row of 10 vote counts, or (None, why it is dropped)."""
    total, top = votes.sum(), votes.max()
    if total <= 0:
        return None, "no votes"
    names = [FERPLUS_COLUMNS[i] for i in np.flatnonzero(votes == top)]
    if any(n in ("unknown", "NF") for n in names):
        return None, "majority unknown/NF"
    if len(names) > 1 and ties == "drop":
        return None, "tie"
    if top / total <= min_share:
        return None, f"winner share <= {min_share}"
    return canonical_name(names[0]), ""


def run(src: Path, dst: Path, *, fer2013: Path | None = None, images: Path | None = None,
        ties: str = "drop", min_share: float = 0.0, contempt: bool = False,
        force: bool = False, skip_bad: bool = False) -> DatasetWriter:
    if (fer2013 is None) == (images is None):
        raise ValueError("give exactly one of --fer2013 (pixels CSV) or --images (PNG folder)")
    if ties not in ("drop", "first"):
        raise ValueError(f"ties must be 'drop' or 'first', got {ties!r}")
    if not src.is_file():
        raise FileNotFoundError(f"FER+ label file not found: {src}")
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    require_columns(df, ["Usage", "Image name", *FERPLUS_COLUMNS], src)
    try:
        votes = df[list(FERPLUS_COLUMNS)].apply(pd.to_numeric, errors="raise").to_numpy()
    except ValueError:
        bad = df[list(FERPLUS_COLUMNS)].apply(pd.to_numeric, errors="coerce").isna()
        row, col = np.argwhere(bad.to_numpy())[0]
        key = FERPLUS_COLUMNS[col]
        raise ImportFormatError(f"{csv_row_where(src, row)}: vote column {key!r} is "
                                f"{df[key].iat[row]!r}, not a number") from None
    if (votes < 0).any():
        row = int(np.argwhere(votes < 0)[0][0])
        raise ImportFormatError(f"{csv_row_where(src, row)}: negative vote count")
    pixels = None
    if fer2013 is not None:
        pixels = [r.pixels for r in parse_fer2013_csv(fer2013)]
        if len(pixels) != len(df):
            raise ImportFormatError(f"{src} has {len(df)} rows but {fer2013} has {len(pixels)}; "
                                    f"FER+ rows must align one-to-one with fer2013.csv")
    splits = [FER2013_USAGE[fer2013_usage(u, csv_row_where(src, row))] for row, u in enumerate(df["Usage"])]
    jobs, drops = [], []  # decide and parse every row first: a bad row leaves no half import
    for row, name in enumerate(df["Image name"]):
        name = name.strip()
        label, why = vote(votes[row], ties=ties, min_share=min_share) if name else (
            None, "removed by FER+ (no image name)")
        if label == "contempt" and not contempt:
            label, why = None, "contempt"
        if label is None:
            drops.append(why)
            continue
        data = pixels[row] if pixels is not None else None
        jobs.append((row, name, label, data))
    w = DatasetWriter(dst, NAME, src, force=force, skip_bad=skip_bad)
    for why in drops:
        w.drop(why)
    for row, name, label, data in jobs:
        if data is not None:
            w.add_array(data, splits[row], label, name)
        else:
            path = images / name
            if not path.is_file():
                path = images / IMAGE_DIRS[df["Usage"].iat[row].strip()] / name
            w.add_file(path, splits[row], label, name)
    return w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path, help="fer2013new.csv")
    p.add_argument("--fer2013", type=Path, help="fer2013.csv with the pixels")
    p.add_argument("--images", type=Path, help="folder with the FER+ PNGs instead")
    p.add_argument("--ties", choices=("drop", "first"), default="drop")
    p.add_argument("--min-share", type=float, default=0.0,
                   help="winner must have more than this share of the votes (0.5: majority)")
    p.add_argument("--contempt", action="store_true", help="keep contempt as an 8th class")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, fer2013=a.fer2013, images=a.images, ties=a.ties,
               min_share=a.min_share, contempt=a.contempt, force=a.force,
               skip_bad=a.skip_bad)
