"""The folder layout the suite reads: ``<root>/{train,val,test}/<class>/<image>``.

Also accepted (for collections before they are split): ``<root>/<class>/<image>``. The rules
are the trainer's (``fer_keras.data.readers``): split and class folders in any spelling the
trainer accepts ('Training', 'Anger', 'happiness'), nested subfolders inside a class folder.
Excluded paths (``exclude.txt``) are dropped here, so every step that walks a dataset
through ``scan`` honours the manual clean pass.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fer_keras.data.exclusions import read_exclusions
from fer_keras.data.image_types import is_image
from fer_keras.data.readers import DatasetError, iter_layout

SPLITS: tuple[str, ...] = ("train", "val", "test")
MARKER = ".fer_dataset.json"


@dataclass(frozen=True)
class Item:
    """One image of a dataset: path relative to the root, its split ('' if none) and canonical class."""

    rel: Path
    split: str
    label: str


def scan(root: str | os.PathLike, *, honour_exclusions: bool = True) -> list[Item]:
    """List a dataset's image files with split and class; raise on a folder that is not a class.

    Files of a type the trainer cannot decode are left out here; ``check_image`` judges the rest.
    """
    root = Path(root)
    excluded = ({(root / rel).resolve() for rel in read_exclusions(root)}
                if honour_exclusions else set())
    items = [Item(f.relative_to(root), "" if split == "all" else split, label)
             for split, label, f in iter_layout(root, excluded) if is_image(f)]
    if not items:
        raise DatasetError(f"{root} holds no image files (expected {root}/<split>/<class>/<image> "
                           f"or {root}/<class>/<image>)")
    return sorted(items, key=lambda it: it.rel.as_posix())


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
