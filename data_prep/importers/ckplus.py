"""CK+ (Lucey et al. 2010): image sequences from neutral to a peak expression.

Layout: ``cohn-kanade-images/S005/001/S005_001_00000001.png ...`` and, for the sequences
that carry an emotion label, ``Emotion/S005/001/S005_001_00000011_emotion.txt`` holding one
code (1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise). The last
``last_n`` frames of a labelled sequence get its emotion (the expression is at its peak
there); the first frame is neutral (``neutral=False`` skips it). Unlabelled sequences are
skipped. CK+ has no official split: everything goes to ``split`` (default train); split by
subject for evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_keras.data.image_types import is_image
from fer_keras.labels import CKPLUS_CODES

from .common import DatasetWriter, ImportFormatError

NAME = "ckplus"


def read_code(file: Path) -> int:
    text = file.read_text(encoding="utf-8", errors="replace").strip()
    try:
        value = float(text)
    except ValueError:
        raise ImportFormatError(f"{file}: expected one emotion code, got {text[:40]!r}") from None
    code = int(value)
    if code != value or code not in CKPLUS_CODES or code == 0:
        raise ImportFormatError(f"{file}: unknown emotion code {text!r} (known: 1-7)")
    return code


def run(src: Path, dst: Path, *, last_n: int = 3, neutral: bool = True, contempt: bool = False,
        split: str = "train", force: bool = False, skip_bad: bool = False) -> DatasetWriter:
    if last_n < 1:
        raise ValueError(f"last_n must be >= 1, got {last_n}")
    images, emotions = src / "cohn-kanade-images", src / "Emotion"
    for d in (images, emotions):
        if not d.is_dir():
            raise FileNotFoundError(f"CK+ folder {d} not found (expected under {src})")
    label_files = sorted(emotions.glob("*/*/*_emotion.txt"))
    if not label_files:
        raise ImportFormatError(f"no */*/*_emotion.txt label files under {emotions}")
    jobs = []
    for lf in label_files:
        code = read_code(lf)
        seq = images / lf.parent.relative_to(emotions)
        frames = sorted(p for p in seq.glob("*") if p.is_file() and is_image(p, convertible=True))
        if len(frames) < last_n + (1 if neutral else 0):
            raise ImportFormatError(f"{seq}: {len(frames)} frames, too few for the last "
                                    f"{last_n} plus a neutral first frame (label {lf})")
        jobs.append((code, frames))
    w = DatasetWriter(dst, NAME, src, force=force, skip_bad=skip_bad)
    for code, frames in jobs:
        label = CKPLUS_CODES[code]
        if label == "contempt" and not contempt:
            w.drop("contempt")
        else:
            for f in frames[-last_n:]:
                w.add_file(f, split, label)
        if neutral:
            w.add_file(frames[0], split, "neutral")
    return w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path,
                   help="CK+ folder with cohn-kanade-images/ and Emotion/")
    p.add_argument("--last-n", type=int, default=3, help="peak frames per labelled sequence")
    p.add_argument("--no-neutral", action="store_true", help="do not take first frames")
    p.add_argument("--contempt", action="store_true", help="keep contempt as an 8th class")
    p.add_argument("--split", choices=("train", "val", "test"), default="train")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, last_n=a.last_n, neutral=not a.no_neutral, contempt=a.contempt,
               split=a.split, force=a.force, skip_bad=a.skip_bad)
