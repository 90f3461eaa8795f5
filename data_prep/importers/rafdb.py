"""RAF-DB basic (Li et al. 2017): ``EmoLabel/list_patition_label.txt`` lines "train_00001.jpg 5".

Codes 1-7 = surprise, fear, disgust, happiness, sadness, anger, neutral. The ``train_`` /
``test_`` prefix is the split (RAF-DB has no validation split). Images are taken from
``Image/aligned/<stem>_aligned.jpg`` (100x100, the BTFER setting) or ``Image/original/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_keras.labels import RAFDB_CODES

from .common import DatasetWriter, ImportFormatError, label_code

NAME = "rafdb"
PREFIX_SPLITS = {"train_": "train", "test_": "test"}


def find_labels(root: Path) -> Path:
    for cand in (root / "EmoLabel" / "list_patition_label.txt", root / "list_patition_label.txt"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no EmoLabel/list_patition_label.txt under {root}")


def run(src: Path, dst: Path, *, labels: Path | None = None, variant: str = "aligned",
        force: bool = False, skip_bad: bool = False) -> DatasetWriter:
    if variant not in ("aligned", "original"):
        raise ValueError(f"variant must be 'aligned' or 'original', got {variant!r}")
    labels = labels or find_labels(src)
    lines = labels.read_text(encoding="utf-8").splitlines()
    entries = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ImportFormatError(f"{labels}: line {i}: expected '<image> <code>', got {line!r}")
        name, code = parts
        split = next((s for p, s in PREFIX_SPLITS.items() if name.startswith(p)), None)
        if split is None:
            raise ImportFormatError(f"{labels}: line {i}: {name!r} starts with neither "
                                    f"train_ nor test_")
        entries.append((name, split, label_code(code, RAFDB_CODES, f"{labels}: line {i}", "label")))
    w = DatasetWriter(dst, NAME, src, force=force, skip_bad=skip_bad)
    for name, split, code in entries:
        stem = Path(name).stem
        path = (src / "Image" / "aligned" / f"{stem}_aligned.jpg" if variant == "aligned"
                else src / "Image" / "original" / name)
        w.add_file(path, split, RAFDB_CODES[code], path.name)
    return w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path, help="RAF-DB basic folder")
    p.add_argument("--labels", type=Path, help="list_patition_label.txt (default: in --src)")
    p.add_argument("--variant", choices=("aligned", "original"), default="aligned")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, labels=a.labels, variant=a.variant, force=a.force,
               skip_bad=a.skip_bad)
