"""Kaggle-style folder copies: ``[<split>/]<class>/<image>`` with any class spelling.

Class folders may say Happy, happiness, 3_happy, ...: they are mapped to canonical names
(an unknown folder is an error naming it). Split folders may be train/training,
val/valid/validation, test/testing; without split folders everything goes to ``split``.
Non-image files are skipped and counted. Every image is decoded before the first one is written:
an unreadable one stops the import with nothing written (all of them named), or with ``--skip-bad``
is left out and named, so a failed import never leaves a half-written folder behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_keras.data.image_types import is_image
from fer_keras.data.readers import class_files
from fer_keras.labels import canonical_name

from ..images import BadImageError, open_rgb
from .common import DatasetWriter, ImportFormatError

NAME = "folders"
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}


def plan(src: Path, split: str) -> list[tuple[Path, str, str]]:
    """(file, split, canonical class) for every image; validates the whole tree first."""
    subdirs = [d for d in sorted(src.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if not subdirs:
        raise ImportFormatError(f"{src} holds no class or split folders")
    split_dirs = {d: SPLIT_ALIASES.get(d.name.lower()) for d in subdirs}
    if any(split_dirs.values()):
        not_split = [d.name for d, s in split_dirs.items() if s is None]
        if not_split:
            raise ImportFormatError(f"{src} mixes split folders with other folders: {not_split}")
        roots = list(split_dirs.items())
    else:
        roots = [(src, split)]
    out = []
    for root, sp in roots:
        for cls_dir in sorted(d for d in root.iterdir() if d.is_dir()):
            if cls_dir.name.startswith("."):
                continue
            label = canonical_name(cls_dir.name, where=str(cls_dir))
            out += [(f, sp, label) for f in class_files(cls_dir) if is_image(f, convertible=True)]
    return out


def unreadable(jobs: list[tuple[Path, str, str]]) -> dict[Path, str]:
    """``{file: decode error naming it}`` for every image that cannot be imported."""
    bad = {}
    for f, _, _ in jobs:
        try:
            open_rgb(f)
        except BadImageError as err:
            bad[f] = str(err)
    return bad


def run(src: Path, dst: Path, *, split: str = "train", force: bool = False,
        skip_bad: bool = False) -> DatasetWriter:
    if not src.is_dir():
        raise FileNotFoundError(f"source folder not found: {src}")
    jobs = plan(src, split)
    bad = unreadable(jobs)
    if bad and not skip_bad:
        errors = list(bad.values())
        shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        raise BadImageError(f"{len(bad)} unreadable image(s), nothing written (fix or remove them, "
                                f"or pass --skip-bad to leave them out): {shown}")
    w = DatasetWriter(dst, NAME, src, force=force, skip_bad=skip_bad)
    for f, err in bad.items():
        w.drop("bad or missing image", where=str(f), detail=err.removeprefix(f"{f}: "))
    for f, sp, label in jobs:
        if f not in bad:
            w.add_file(f, sp, label)
    return w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path, help="folder of class (or split) folders")
    p.add_argument("--split", choices=("train", "val", "test"), default="train",
                   help="split for a folder without split subfolders")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, split=a.split, force=a.force, skip_bad=a.skip_bad)
