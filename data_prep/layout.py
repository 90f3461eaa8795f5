"""The folder layout the suite reads: ``<root>/{train,val,test}/<class>/<image>``.

Also accepted (for collections before they are split): ``<root>/<class>/<image>``.
Excluded paths (``exclude.txt``) are dropped here, so every step that walks a dataset
through ``scan`` honours the manual clean pass.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fer_keras.labels import ALL_CLASSES

from .exclusions import read_exclusions
from .images import list_images

SPLITS: tuple[str, ...] = ("train", "val", "test")
MARKER = ".fer_dataset.json"


@dataclass(frozen=True)
class Item:
    """One image of a dataset: path relative to the root, its split ('' if none) and class."""

    rel: Path
    split: str
    label: str


def scan(root: str | os.PathLike, *, honour_exclusions: bool = True) -> list[Item]:
    """List a dataset's images with split and class; raise on a folder that is not a class."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    excluded = read_exclusions(root) if honour_exclusions else set()
    has_splits = any((root / s).is_dir() for s in SPLITS)
    items = []
    for rel in list_images(root):
        if rel in excluded:
            continue
        parts = rel.parts
        if has_splits:
            if len(parts) != 3 or parts[0] not in SPLITS:
                raise ValueError(f"{root / rel}: expected <root>/<split>/<class>/<image> "
                                 f"with split in {SPLITS}")
            split, label = parts[0], parts[1]
        else:
            if len(parts) != 2:
                raise ValueError(f"{root / rel}: expected <root>/<class>/<image>")
            split, label = "", parts[0]
        if label not in ALL_CLASSES:
            raise ValueError(f"{root / rel}: class folder {label!r} is not a canonical class "
                             f"({', '.join(ALL_CLASSES)}); import the data first")
        items.append(Item(rel, split, label))
    return items


def prepare_output(dst: str | os.PathLike, dataset: str, source: str, *,
                   force: bool = False) -> Path:
    """Make ``dst`` ready for ``dataset``; refuse a folder that holds something else.

    A marker file records what an importer wrote, so a second import into the same folder
    is told apart from a collision with another dataset or unrelated files.
    """
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise NotADirectoryError(f"output {dst} exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()):
        marker = dst / MARKER
        if not marker.is_file():
            raise FileExistsError(f"output folder {dst} is not empty and was not written by a "
                                  f"data_prep importer; choose a new folder")
        held = json.loads(marker.read_text(encoding="utf-8"))
        if held.get("dataset") != dataset:
            raise FileExistsError(f"output folder {dst} already holds dataset "
                                  f"{held.get('dataset')!r} (from {held.get('source')}); "
                                  f"refusing to mix in {dataset!r}")
        if not force:
            raise FileExistsError(f"output folder {dst} already holds {dataset!r} "
                                  f"(from {held.get('source')}); pass --force to re-import")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / MARKER).write_text(json.dumps({"dataset": dataset, "source": str(source)}, indent=1),
                              encoding="utf-8")
    return dst


def require_new_folder(dst: str | os.PathLike) -> Path:
    """Steps that write a derived dataset (balance, anonymize) never write into used folders."""
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"output folder {dst} exists and is not empty; choose a new one")
    dst.mkdir(parents=True, exist_ok=True)
    return dst
