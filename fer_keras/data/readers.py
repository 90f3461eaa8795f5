"""Readers that turn a dataset on disk into labelled image lists in canonical class order.

Layouts: class-per-folder (BTFER, Kaggle FER2013, most RAF-DB copies) with optional
``train/``, ``val/`` and ``test/`` splits, and the FER2013 CSV (``emotion,pixels,Usage``).
Unreadable, truncated, empty and blank images are skipped, counted and listed with the
reason, never silently dropped and never fatal.
"""

from __future__ import annotations

import csv
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_prep.exclusions import read_exclusions
from fer_keras.labels import FER2013_CODES, canonical_name, canonical_order

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
#: A decoded image whose pixel standard deviation is below this is treated as blank.
BLANK_STD = 1.0


class DatasetError(ValueError):
    """A dataset that cannot be read as it is: the message names the folder or file."""


@dataclass
class ImageSet:
    """Labelled images of one split: file paths, or decoded pixels for CSV datasets."""

    name: str
    class_names: tuple[str, ...]
    labels: np.ndarray
    paths: list[str] = field(default_factory=list)
    pixels: np.ndarray | None = None  # (n, h, w) or (n, h, w, 3) uint8 when read from a CSV
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        c = Counter(self.labels.tolist())
        return {name: int(c.get(i, 0)) for i, name in enumerate(self.class_names)}

    def subset(self, index: np.ndarray, name: str) -> ImageSet:
        return ImageSet(
            name=name,
            class_names=self.class_names,
            labels=self.labels[index],
            paths=[self.paths[i] for i in index] if self.paths else [],
            pixels=self.pixels[index] if self.pixels is not None else None,
        )

    def summary(self) -> dict:
        return {
            "images": len(self),
            "counts": self.counts(),
            "skipped": len(self.skipped),
            "skipped_files": [{"file": f, "reason": r} for f, r in self.skipped],
        }


def check_image(path: Path) -> str | None:
    """Why ``path`` cannot be trained on (None when it can)."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as img:
            img.draft("L", (64, 64))  # JPEG: decode at reduced size, enough to judge
            pixels = np.asarray(img.convert("L"), dtype=np.float32)
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, SyntaxError, ValueError) as err:
        return f"unreadable or truncated image ({err})"
    if pixels.size == 0 or float(pixels.std()) < BLANK_STD:
        return "blank image (a single colour)"
    return None


def read_class_folders(folder: Path, *, name: str | None = None, workers: int = 8,
                       exclusions: set[Path] | None = None) -> ImageSet:
    """Read ``folder/<class>/<image>``; folder names may use any alias ('Happy', 'happiness')."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist")
    classes: dict[str, Path] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name.startswith("."):
            continue
        cls = canonical_name(sub.name, where=str(sub))
        if cls in classes:
            raise DatasetError(f"folders {classes[cls]} and {sub} both hold class {cls!r}")
        classes[cls] = sub
    if not classes:
        raise DatasetError(f"{folder} holds no class folders (expected {folder}/<class>/<image>)")
    order = canonical_order(classes)
    exclusions = exclusions or set()
    files: list[tuple[Path, int]] = []
    for idx, cls in enumerate(order):
        found = sorted(p for p in classes[cls].rglob("*") if p.is_file() and not p.name.startswith("."))
        if not found:
            raise DatasetError(f"class folder {classes[cls]} is empty")
        files += [(p, idx) for p in found if p.resolve() not in exclusions]
    skipped: list[tuple[str, str]] = []
    candidates = []
    for p, idx in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((str(p), f"not an image file type ({p.suffix or 'no suffix'})"))
        else:
            candidates.append((p, idx))
    with ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(lambda item: check_image(item[0]), candidates))
    keep = [(str(p), idx) for (p, idx), why in zip(candidates, problems, strict=True) if why is None]
    skipped += [(str(p), why) for (p, _), why in zip(candidates, problems, strict=True) if why]
    for cls in order:
        if not any(order[idx] == cls for _, idx in keep):
            raise DatasetError(f"class folder {classes[cls]} has no usable image (see skipped files)")
    return ImageSet(
        name=name or folder.name,
        class_names=order,
        labels=np.array([idx for _, idx in keep], dtype=np.int32),
        paths=[p for p, _ in keep],
        skipped=skipped,
    )


FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def read_fer2013_csv(path: Path) -> dict[str, ImageSet]:
    """Read the FER2013 CSV into train (Training), val (PublicTest) and test (PrivateTest)."""
    path = Path(path)
    rows: dict[str, tuple[list[np.ndarray], list[int]]] = {s: ([], []) for s in FER2013_USAGE.values()}
    skipped: dict[str, list[tuple[str, str]]] = {s: [] for s in rows}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"emotion", "pixels", "Usage"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise DatasetError(f"{path}: header must have columns {sorted(need)}, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}, row {line}"
            split = FER2013_USAGE.get(row["Usage"])
            if split is None:
                raise DatasetError(f"{where}: unknown Usage {row['Usage']!r}; expected {list(FER2013_USAGE)}")
            try:
                code = int(row["emotion"])
                label = FER2013_CODES[code]
            except (ValueError, KeyError):
                raise DatasetError(f"{where}: unknown emotion code {row['emotion']!r}") from None
            try:
                values = np.array(row["pixels"].split(), dtype=np.float32)
            except ValueError:
                raise DatasetError(f"{where}: pixels must be space-separated numbers") from None
            side = int(round(np.sqrt(values.size)))
            if side * side != values.size or values.size == 0 or values.min() < 0 or values.max() > 255:
                raise DatasetError(f"{where}: {values.size} pixel values do not form a square 8-bit image")
            img = values.reshape(side, side).astype(np.uint8)
            if img.std() < BLANK_STD:
                skipped[split].append((where, "blank image (a single colour)"))
                continue
            rows[split][0].append(img)
            rows[split][1].append(label)
    out = {}
    for split, (imgs, labels) in rows.items():
        if not imgs:
            continue
        order = canonical_order(labels)
        idx = {c: i for i, c in enumerate(order)}
        out[split] = ImageSet(
            name=f"{path.stem}/{split}", class_names=order,
            labels=np.array([idx[c] for c in labels], dtype=np.int32),
            pixels=np.stack(imgs), skipped=skipped[split],
        )
    if "train" not in out:
        raise DatasetError(f"{path} has no Training rows")
    return out


def read_dataset(path: Path, *, workers: int = 8) -> dict[str, ImageSet]:
    """Read a dataset's splits: {'train', 'val', 'test'} subsets, or {'all'} for a flat one."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_fer2013_csv(path)
    if not path.is_dir():
        raise DatasetError(f"dataset {path} does not exist (expected a folder or a FER2013 .csv)")
    exclusions = {(path / rel).resolve() for rel in read_exclusions(path)}
    splits = {SPLIT_NAMES[p.name.lower()]: p for p in path.iterdir()
              if p.is_dir() and p.name.lower() in SPLIT_NAMES}
    if not splits:
        return {"all": read_class_folders(path, name=path.name, workers=workers, exclusions=exclusions)}
    return {s: read_class_folders(p, name=f"{path.name}/{s}", workers=workers, exclusions=exclusions)
            for s, p in splits.items()}


def folder_classes(path: Path) -> tuple[str, ...]:
    """Canonical classes of a class-per-folder set (its ``test/`` split if it has one), cheaply."""
    path = Path(path)
    test = next((p for p in path.iterdir() if p.is_dir() and SPLIT_NAMES.get(p.name.lower()) == "test"), None)
    root = test or path
    return canonical_order(canonical_name(p.name, where=str(p)) for p in root.iterdir()
                           if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in SPLIT_NAMES)


def evaluation_set(path: Path, *, workers: int = 8) -> ImageSet:
    """The images a cross-domain evaluation uses: the ``test/`` split, else the whole folder."""
    parts = read_dataset(path, workers=workers)
    for key in ("test", "all"):
        if key in parts:
            return parts[key]
    raise DatasetError(f"{path} has neither a test/ split nor class folders at its top level")
