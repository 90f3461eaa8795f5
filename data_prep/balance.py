"""A balanced sample: N images per class (BTFER: 300 of each of 7 classes), seeded.

Files are copied into a new folder (sources untouched) without their metadata (EXIF, GPS, XMP, ICC,
comments: a balanced set is meant for release), pixels unchanged; ``balance_manifest.csv`` records
each source and destination with the seed, so the draw can be audited and repeated.
The draw depends only on the sorted file list and the seed, not on file-system order.
Only images the trainer would read are drawn: the dataset is read with the trainer's reader
and checks, and the files it rejects are listed with the reason in ``balance_rejected.csv``.
The draw comes from the train split unless ``--split`` names another; ``--split all`` pools
every split and says so, because a training sample must not quietly hold test images.

Usage: python -m data_prep.balance --src DATA/btfer_raw [--split train] --dst DATA/btfer
       [--per-class 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
from collections import defaultdict
from pathlib import Path

import pandas as pd

from fer_keras.data.readers import DatasetError, read_dataset, reason_counts
from fer_keras.labels import CANONICAL_CLASSES, canonical_order

from .cli import run_step, step_parser
from .images import clean_copy_suffix, copy_without_metadata
from .layout import Item, require_new_folder

MANIFEST = "balance_manifest.csv"
REJECTED = "balance_rejected.csv"
SPLIT_CHOICES = ("train", "val", "test", "all")


def draw(items: list[Item], per_class: int, seed: int, *,
         allow_fewer: bool = False) -> dict[str, list[Item]]:
    """``per_class`` items of each class, reproducible for a given seed."""
    by_class: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_class[it.label].append(it)
    short = {c: len(v) for c, v in by_class.items() if len(v) < per_class}
    if short and not allow_fewer:
        raise ValueError(f"classes with fewer than {per_class} images: {short}; "
                         f"lower --per-class or pass --allow-fewer to take all of them")
    out = {}
    for c in canonical_order(by_class):
        pool = sorted(by_class[c], key=lambda it: it.rel.as_posix())
        # One generator per class: adding a class never changes another class's draw.
        rng = random.Random(f"{seed}:{c}")
        out[c] = sorted(rng.sample(pool, min(per_class, len(pool))), key=lambda it: it.rel)
    return out


def usable_items(src: Path, split: str = "train", *, workers: int = 8) -> tuple[list[Item], list[tuple[str, str]]]:
    """Images of ``split`` the trainer would read, and the files it rejects (relative path, reason)."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"--split must be one of {SPLIT_CHOICES}, got {split!r}")
    if src.suffix.lower() == ".csv":
        raise DatasetError(f"{src}: balance copies image files; convert the CSV first "
                           f"(make import DATASET=fer2013_csv SRC={src} DST=...)")
    parts = read_dataset(src, workers=workers)  # the trainer's reader: aliases, nesting, checks
    if "all" in parts:
        if split in ("val", "test"):
            raise DatasetError(f"{src} has no split folders, so there is no {split!r} split; "
                               f"leave out --split")
    elif split != "all":
        if split not in parts:
            raise DatasetError(f"{src} has no {split!r} split (found: {', '.join(sorted(parts))})")
        parts = {split: parts[split]}
    items, rejected = [], []
    for name, images in sorted(parts.items()):
        for path, label in zip(images.paths, images.labels, strict=True):
            items.append(Item(Path(path).relative_to(src), "" if name == "all" else name,
                              images.class_names[label]))
        rejected += [(Path(f).relative_to(src).as_posix(), why) for f, why in images.skipped]
    return items, rejected


def balance(src: str | os.PathLike, dst: str | os.PathLike, *, per_class: int = 300,
            seed: int = 0, split: str = "train", dst_split: str | None = None,
            allow_fewer: bool = False) -> pd.DataFrame:
    """Copy the draw to ``dst/<dst_split>/<class>/``, write the manifest and rejected list; return the manifest."""
    src, dst = Path(src), Path(dst)
    if per_class < 1:
        raise ValueError(f"--per-class must be >= 1, got {per_class}")
    items, rejected = usable_items(src, split)
    chosen = draw(items, per_class, seed, allow_fewer=allow_fewer)
    require_new_folder(dst)
    has_splits = any(it.split for it in items)
    out_split = dst_split if dst_split is not None else (split if has_splits and split != "all" else "")
    rows = []
    for c, its in chosen.items():
        for it in its:
            target = (dst / out_split / c / it.rel.name).with_suffix(clean_copy_suffix(src / it.rel))
            if target.exists():  # same file name in two splits or subfolders of one class
                target = target.with_name("_".join(it.rel.with_suffix(target.suffix).parts))
            copy_without_metadata(src / it.rel, target)
            rows.append({"class": c, "split": it.split, "source": it.rel.as_posix(),
                         "dest": target.relative_to(dst).as_posix(), "seed": seed})
    manifest = pd.DataFrame(rows, columns=["class", "split", "source", "dest", "seed"])
    manifest.to_csv(dst / MANIFEST, index=False)
    if rejected:
        pd.DataFrame(rejected, columns=["file", "reason"]).to_csv(dst / REJECTED, index=False)
    manifest.attrs["rejected"] = rejected
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = step_parser("data_prep.balance", __doc__)
    p.add_argument("--src", required=True, type=Path, help="dataset root")
    p.add_argument("--dst", required=True, type=Path, help="new folder for the sample")
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=SPLIT_CHOICES, default="train",
                   help="draw only from this split (default: train; 'all' pools every split, "
                        "test included)")
    p.add_argument("--dst-split", help="split folder to write into (default: --split)")
    p.add_argument("--allow-fewer", action="store_true",
                   help="take every image of a class smaller than --per-class")
    a = p.parse_args(argv)
    return run_step(lambda: _report(a, balance(a.src, a.dst, per_class=a.per_class, seed=a.seed,
                                               split=a.split, dst_split=a.dst_split,
                                               allow_fewer=a.allow_fewer)))


def _report(a: argparse.Namespace, m: pd.DataFrame) -> None:
    """Counts, rejected files and any mixing of splits, on the console where the user looks."""
    sizes = m.groupby("class").size()
    print(sizes.to_string())
    rejected = m.attrs["rejected"]
    if rejected:
        print(f"rejected {len(rejected)} files the trainer would skip ({reason_counts(rejected)}); "
              f"listed in {a.dst / REJECTED}")
    mixed = m.groupby("split").size()
    if a.split == "all" and set(mixed.index) & {"val", "test"}:
        print(f"warning: the sample mixes splits ({', '.join(f'{s}: {n}' for s, n in mixed.items())}); "
              f"do not train on it and then test on the same dataset's test split")
    missing = [c for c in CANONICAL_CLASSES if c not in sizes.index]
    short = sizes[sizes < a.per_class]
    if missing or len(short):
        print(f"warning: below {a.per_class} per class: {short.to_dict()}; absent: {missing}")
    print(f"{len(m)} images -> {a.dst} (manifest {a.dst / MANIFEST})")


if __name__ == "__main__":
    raise SystemExit(main())
