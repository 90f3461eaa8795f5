"""A balanced sample: N images per class (BTFER: 300 of each of 7 classes), seeded.

Files are copied into a new folder (sources untouched); ``balance_manifest.csv`` records
each source and destination with the seed, so the draw can be audited and repeated.
The draw depends only on the sorted file list and the seed, not on file-system order.

Usage: python -m data_prep.balance --src DATA/btfer_raw [--split test] --dst DATA/btfer
       [--per-class 300] [--seed 0]
"""

from __future__ import annotations

import os
import random
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd

from fer_keras.labels import CANONICAL_CLASSES, canonical_order

from .cli import step_parser
from .layout import Item, require_new_folder, scan

MANIFEST = "balance_manifest.csv"


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


def balance(src: str | os.PathLike, dst: str | os.PathLike, *, per_class: int = 300,
            seed: int = 0, split: str | None = None, dst_split: str | None = None,
            allow_fewer: bool = False) -> pd.DataFrame:
    """Copy the draw to ``dst/<dst_split>/<class>/`` and write the manifest; return it."""
    src, dst = Path(src), Path(dst)
    items = scan(src)  # honours src/exclude.txt
    if split is not None:
        items = [it for it in items if it.split == split]
        if not items:
            raise ValueError(f"no images in split {split!r} of {src}")
    if per_class < 1:
        raise ValueError(f"--per-class must be >= 1, got {per_class}")
    chosen = draw(items, per_class, seed, allow_fewer=allow_fewer)
    require_new_folder(dst)
    out_split = dst_split if dst_split is not None else (split or "")
    rows = []
    for c, its in chosen.items():
        for it in its:
            target = dst / out_split / c / it.rel.name
            if target.exists():  # same file name in two source splits of one class
                target = target.with_name(f"{it.split}_{it.rel.name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / it.rel, target)
            rows.append({"class": c, "source": it.rel.as_posix(),
                         "dest": target.relative_to(dst).as_posix(), "seed": seed})
    manifest = pd.DataFrame(rows, columns=["class", "source", "dest", "seed"])
    manifest.to_csv(dst / MANIFEST, index=False)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = step_parser("data_prep.balance", __doc__)
    p.add_argument("--src", required=True, type=Path, help="dataset root")
    p.add_argument("--dst", required=True, type=Path, help="new folder for the sample")
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", help="draw only from this split (default: all images)")
    p.add_argument("--dst-split", help="split folder to write into (default: --split)")
    p.add_argument("--allow-fewer", action="store_true",
                   help="take every image of a class smaller than --per-class")
    a = p.parse_args(argv)
    m = balance(a.src, a.dst, per_class=a.per_class, seed=a.seed, split=a.split,
                dst_split=a.dst_split, allow_fewer=a.allow_fewer)
    sizes = m.groupby("class").size()
    print(sizes.to_string())
    missing = [c for c in CANONICAL_CLASSES if c not in sizes.index]
    short = sizes[sizes < a.per_class]
    if missing or len(short):
        print(f"warning: below {a.per_class} per class: {short.to_dict()}; absent: {missing}")
    print(f"{len(m)} images -> {a.dst} (manifest {a.dst / MANIFEST})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
