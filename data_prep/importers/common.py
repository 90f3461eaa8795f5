"""What every importer shares: a guarded output folder, image writing, counts per class/split."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fer_keras.data.image_types import DECODABLE_FORMATS
from fer_keras.data.readers import DatasetError
from fer_keras.labels import ALL_CLASSES, canonical_order

from ..images import BadImageError, open_rgb, save_clean
from ..layout import SPLITS, prepare_output

#: Where an import lists the rows or files it dropped, inside the output folder.
SKIPPED = "import_skipped.csv"
#: Dropped rows/files the console names (the rest are in ``SKIPPED``).
SHOWN = 10


class ImportFormatError(DatasetError):
    """Input that does not have the dataset's documented format (names the file/row/key)."""


class DatasetWriter:
    """Writes ``<dst>/<split>/<class>/<name>`` and counts what was written and dropped."""

    def __init__(self, dst: str | Path, dataset: str, source: str | Path, *,
                 force: bool = False, skip_bad: bool = False) -> None:
        self.root = prepare_output(dst, dataset, str(source), force=force)
        if force:  # re-import of the same dataset (the marker proved it): start clean
            for split in SPLITS:
                shutil.rmtree(self.root / split, ignore_errors=True)
        self.dataset = dataset
        self.skip_bad = skip_bad
        self.counts: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[str] = Counter()
        self.dropped_at: list[tuple[str, str]] = []

    def _target(self, split: str, label: str, name: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        if label not in ALL_CLASSES:
            raise ValueError(f"label {label!r} is not a canonical class")
        path = self.root / split / label / name
        if path.exists():
            raise FileExistsError(f"{path} was already written by this import: two inputs "
                                  f"map to the same name ({name})")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.counts[(split, label)] += 1
        return path

    def add_array(self, pixels: np.ndarray, split: str, label: str, name: str) -> Path:
        """Save a decoded image (e.g. a CSV pixel row) losslessly as PNG."""
        path = self._target(split, label, Path(name).with_suffix(".png").name)
        save_clean(Image.fromarray(pixels), path)
        return path

    def open_listed(self, src: Path, listed_in: str) -> Image.Image | None:
        """Open an image a label file lists; a missing or broken one raises (naming both), or with
        ``skip_bad`` is counted as dropped and gives None."""
        try:
            if not src.is_file():
                raise BadImageError(f"{src}: image listed in {listed_in} does not exist")
            return open_rgb(src)
        except BadImageError as err:
            if not self.skip_bad:
                raise
            self.drop("bad or missing image", where=str(src), detail=str(err).removeprefix(f"{src}: "))
            return None

    def add_file(self, src: Path, split: str, label: str,
                 name: str | None = None) -> Path | None:
        """Copy an image file, validated; re-encode (8-bit RGB PNG) what Keras cannot read.

        Source files are only read. 16-bit, CMYK, alpha and TIFF inputs are converted so the
        training readers see the same pixels PIL shows. A missing or broken file raises
        (naming it), or with ``skip_bad`` is counted as dropped and skipped.
        """
        img = self.open_listed(src, "the labels")
        if img is None:
            return None
        name = name or src.name
        with Image.open(src) as raw:
            fmt, mode = raw.format, raw.mode
        if src.suffix.lower() in DECODABLE_FORMATS.get(fmt, ()) and mode in ("L", "RGB"):
            path = self._target(split, label, name)
            shutil.copyfile(src, path)
        else:
            path = self._target(split, label, Path(name).with_suffix(".png").name)
            save_clean(img, path)
        return path

    def drop(self, reason: str, where: str | None = None, detail: str | None = None) -> None:
        """Count a dropped input under ``reason``; with ``where`` also list it, with ``detail`` (else the
        reason), in ``SKIPPED`` and on the console, so the user can find it."""
        self.dropped[reason] += 1
        if where is not None:
            new = not self.dropped_at
            self.dropped_at.append((where, detail or reason))
            pd.DataFrame([(where, detail or reason)]).to_csv(self.root / SKIPPED, mode="w" if new else "a",
                                                   header=["where", "reason"] if new else False,
                                                   index=False)

    def table(self) -> pd.DataFrame:
        """Images per class (rows, canonical order) and split (columns)."""
        if not self.counts:
            return pd.DataFrame()
        s = pd.Series(self.counts)
        t = s.unstack(0, fill_value=0)
        t = t.reindex(index=list(canonical_order(t.index)),
                      columns=[c for c in SPLITS if c in t.columns])
        t.loc["total"] = t.sum()
        return t

    def report(self) -> str:
        lines = [f"{self.dataset} -> {self.root}", self.table().to_string()]
        if self.dropped:
            lines.append("dropped: " + ", ".join(f"{k}: {v}" for k, v in
                                                 sorted(self.dropped.items())))
        if self.dropped_at:
            lines += [f"  {where}: {reason}" for where, reason in self.dropped_at[:SHOWN]]
            more = f"; {len(self.dropped_at) - SHOWN} more" if len(self.dropped_at) > SHOWN else ""
            lines.append(f"dropped rows/files are listed in {self.root / SKIPPED}{more}")
        return "\n".join(lines)


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


def require_columns(df: pd.DataFrame, needed: list[str], file: Path) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ImportFormatError(f"{file}: missing column(s) {missing}; found {list(df.columns)} "
                                f"(expected header: {', '.join(needed)})")
