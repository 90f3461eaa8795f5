"""Readers that turn a dataset on disk into labelled image lists in canonical class order.

Layouts: class-per-folder (BTFER, Kaggle FER2013, most RAF-DB copies) with optional
``train/``, ``val/`` and ``test/`` splits, and the FER2013 CSV (``emotion,pixels,Usage``).
Unreadable, truncated, empty and blank images are skipped, counted and listed with the
reason, never silently dropped and never fatal.
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fer_keras.data.exclusions import read_exclusions
from fer_keras.data.image_types import DECODABLE_FORMATS, IMAGE_SUFFIXES, MAX_PIXELS, MIN_FACE_SIDE, to_8bit, too_small
from fer_keras.data.images import exif_orientation
from fer_keras.labels import FER2013_CODES, canonical_name, canonical_order

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
    #: Per file, the EXIF orientation the pipeline applies after decoding (:func:`exif_orientation`);
    #: None: every image upright (pixel sets, and sets built without reading the files' headers).
    orientations: np.ndarray | None = None

    def orientation(self) -> np.ndarray:
        """(n,) uint8 EXIF orientation of every image, 1 (upright) where none was read."""
        return self.orientations if self.orientations is not None else np.ones(len(self), np.uint8)

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
            orientations=self.orientations[index] if self.orientations is not None else None,
        )

    def summary(self) -> dict:
        return {
            "images": len(self),
            "counts": self.counts(),
            "skipped": len(self.skipped),
            "skipped_files": [{"file": f, "reason": r} for f, r in self.skipped],
        }


def reason_counts(skipped: list[tuple[str, str]]) -> str:
    """'3 not an image, 1 blank image': reasons counted without their per-file detail, for one line."""
    counts = Counter(why.split(" (")[0] for _, why in skipped)
    return ", ".join(f"{n} {why}" for why, n in counts.most_common())


def skipped_lines(skipped: list[tuple[str, str]], listed_in: str | Path, *, head: str = "skipped",
                  shown: int = 10) -> list[str]:
    """The console's account of skipped files: one line of counts, then each file with its reason
    (the first ``shown``; all of them are in ``listed_in``)."""
    if not skipped:
        return []
    more = f"; {len(skipped) - shown} more" if len(skipped) > shown else ""
    return ([f"{head} {len(skipped)} files: {reason_counts(skipped)} (listed in {listed_in}{more})"]
            + [f"  {f}: {why}" for f, why in skipped[:shown]])


def check_image(path: Path) -> str | None:
    """Why ``path`` cannot be trained on (None when it can): the one check every step shares."""
    return inspect_image(path)[0]


def inspect_image(path: Path) -> tuple[str | None, int]:
    """(:func:`check_image`'s verdict, the file's :func:`exif_orientation`): one open of the file for both."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)", 1
        with warnings.catch_warnings():
            # PIL warns about a decompression bomb from the header; judge the size before decoding.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                problem = _problem(img)
                # Read after the checks, which decode the image: a PNG's eXIf chunk may follow its pixels.
                return problem, exif_orientation(img) if problem is None else 1
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        return f"too large ({err})", 1
    except UnidentifiedImageError:
        return "not an image", 1
    except (OSError, SyntaxError, ValueError) as err:
        return f"unreadable or truncated image ({err})", 1


def _problem(img: Image.Image) -> str | None:
    """:func:`check_image`'s verdict on an opened file."""
    fmt = "JPEG" if img.format == "MPO" else img.format  # phone JPEGs with a second picture
    if fmt not in DECODABLE_FORMATS:
        return (f"{fmt} image: the training pipeline decodes only "
                f"{', '.join(DECODABLE_FORMATS)} (make import converts it)")
    if fmt == "BMP" and img.mode == "1":
        return "1-bit BMP: the training pipeline cannot decode it (make import converts it)"
    w, h = img.size
    if w * h > MAX_PIXELS:
        return f"too large ({w}x{h} px, above {MAX_PIXELS:,} pixels)"
    small = too_small(w, h)
    if small:
        return small
    if fmt == "WEBP" and "A" in img.mode:
        # tf.io.decode_image(channels=3) refuses it, so training would stop mid-epoch.
        return ("WebP with an alpha channel: the training pipeline cannot decode it "
                "(make import converts it)")
    img.draft("L", (64, 64))  # JPEG: decode at reduced size, enough to judge
    if fmt == "GIF" and _transparent_pixels(img):
        return ("GIF with transparent pixels: the training pipeline decodes them as black, not as the "
                "colour stored under them (make import converts it)")
    pixels = np.asarray(to_8bit(img).convert("L"), dtype=np.float32)
    if pixels.size == 0 or float(pixels.std()) < BLANK_STD:
        return "blank image (a single colour)"
    return None


def _transparent_pixels(img: Image.Image) -> bool:
    """A palette image whose transparent index is used by a pixel (of its first frame)."""
    index = img.info.get("transparency")
    return img.mode == "P" and isinstance(index, int) and bool((np.asarray(img) == index).any())


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def class_dirs(folder: Path) -> dict[str, Path]:
    """``{class: folder}`` of ``folder/<class>/``, any alias ('Anger', 'happiness'); raises on an unknown name."""
    classes: dict[str, Path] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p)):
        cls = canonical_name(sub.name, where=str(sub))
        if cls in classes:
            raise DatasetError(f"folders {classes[cls]} and {sub} both hold class {cls!r}")
        classes[cls] = sub
    if not classes:
        raise DatasetError(f"{folder} holds no class folders (expected {folder}/<class>/<image>)")
    return classes


def split_dirs(path: Path) -> dict[str, Path]:
    """``{split: folder}`` for a dataset with split folders (any SPLIT_NAMES spelling), else ``{'all': path}``."""
    path = Path(path)
    if path.is_file():
        raise DatasetError(f"{path} is a file, not a dataset folder (a FER2013 CSV is read by the trainer "
                           f"or converted with `make import DATASET=fer2013_csv`)")
    if not path.is_dir():
        raise DatasetError(f"dataset folder {path} does not exist")
    splits: dict[str, Path] = {}
    for p in sorted(p for p in path.iterdir() if p.is_dir() and p.name.lower() in SPLIT_NAMES):
        split = SPLIT_NAMES[p.name.lower()]
        if split in splits:
            raise DatasetError(f"folders {splits[split]} and {p} are both the {split!r} split")
        splits[split] = p
    return splits or {"all": path}


def class_files(folder: Path) -> list[Path]:
    """Every file under a class folder, nested subfolders included, hidden ones not; an empty class folder
    raises, in every step alike: going on would quietly drop a class (six classes instead of seven)."""
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and all(_visible(Path(q)) for q in p.relative_to(folder).parts))
    if not files:
        raise DatasetError(f"class folder {folder} is empty: put its images in it, or remove the folder "
                           "if the dataset has no such class")
    return files


def iter_layout(path: Path, exclusions: set[Path] | None = None) -> Iterator[tuple[str, str, Path]]:
    """``(split, class, file)`` for every file of a dataset, excluded ones left out; the trainer's rules."""
    exclusions = exclusions or set()
    for split, folder in split_dirs(path).items():
        for cls, sub in class_dirs(folder).items():
            for f in class_files(sub):
                if f.resolve() not in exclusions:
                    yield split, cls, f


def read_class_folders(folder: Path, *, name: str | None = None, workers: int = 8,
                       exclusions: set[Path] | None = None) -> ImageSet:
    """Read ``folder/<class>/<image>``; folder names may use any alias ('Happy', 'happiness')."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist")
    classes = class_dirs(folder)
    order = canonical_order(classes)
    exclusions = exclusions or set()
    files: list[tuple[Path, int]] = []
    for idx, cls in enumerate(order):
        found = class_files(classes[cls])
        files += [(p, idx) for p in found if p.resolve() not in exclusions]
    skipped: list[tuple[str, str]] = []
    candidates = []
    for p, idx in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((str(p), f"not an image type the training pipeline decodes ({p.suffix or 'no suffix'})"))
        else:
            candidates.append((p, idx))
    with ThreadPoolExecutor(workers) as pool:
        found = list(pool.map(lambda item: inspect_image(item[0]), candidates))
    keep = [(str(p), idx, turn) for (p, idx), (why, turn) in zip(candidates, found, strict=True) if why is None]
    skipped += [(str(p), why) for (p, _), (why, _) in zip(candidates, found, strict=True) if why]
    for cls in order:
        if not any(order[idx] == cls for _, idx, _ in keep):
            why = Counter(r for f, r in skipped if Path(f).is_relative_to(classes[cls]))
            raise DatasetError(f"class folder {classes[cls]} has no usable image; skipped: "
                               + "; ".join(f"{n} {r}" for r, n in why.most_common(3)))
    return ImageSet(
        name=name or folder.name,
        class_names=order,
        labels=np.array([idx for _, idx, _ in keep], dtype=np.int32),
        paths=[p for p, _, _ in keep],
        skipped=skipped,
        orientations=np.array([turn for _, _, turn in keep], dtype=np.uint8),
    )


FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FER2013_COLUMNS = ("emotion", "pixels", "Usage")


@dataclass(frozen=True)
class Fer2013Row:
    """One validated row of a FER2013 CSV; ``where`` names file, row and line for messages."""

    where: str
    row: int
    usage: str
    label: str
    pixels: np.ndarray  # (side, side) uint8

    @property
    def split(self) -> str:
        return FER2013_USAGE[self.usage]

    @property
    def blank(self) -> bool:
        return float(self.pixels.std()) < BLANK_STD

    @property
    def problem(self) -> str | None:
        """Why the row cannot be trained on, as :func:`check_image` says it of a file; None when it can."""
        if self.blank:
            return "blank image (a single colour)"
        return too_small(self.pixels.shape[1], self.pixels.shape[0])


def csv_row_where(path: Path, row: int, line: int | None = None) -> str:
    """'file: row 3 (line 5)': data rows count from 0, file lines from 1 with the header."""
    return f"{path}: row {row} (line {line if line is not None else row + 2})"


def fer2013_usage(usage: str, where: str) -> str:
    """The canonical Usage spelling (stray spaces dropped), or an error naming the place."""
    if usage.strip() not in FER2013_USAGE:
        raise DatasetError(f"{where}: unknown Usage {usage!r} (known: {list(FER2013_USAGE)})")
    return usage.strip()


def _fer2013_label(value: str, where: str) -> str:
    try:
        code = float(value)
    except ValueError:
        code = None
    if code is None or code != int(code) or int(code) not in FER2013_CODES:
        raise DatasetError(f"{where}: unknown emotion code {value.strip()!r} (known: {sorted(FER2013_CODES)})")
    return FER2013_CODES[int(code)]


def _fer2013_pixels(text: str, where: str, side: int | None) -> np.ndarray:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DatasetError(f"{where}: pixels contain a non-integer value "
                           f"(expected space-separated numbers 0..255)") from None
    if side is not None and values.size != side * side:
        raise DatasetError(f"{where}: {values.size} pixel values, expected {side * side} ({side}x{side} "
                           f"like the rows before)")
    n = int(round(np.sqrt(values.size)))
    if values.size == 0 or n * n != values.size:
        raise DatasetError(f"{where}: {values.size} pixel values do not form a square image")
    if values.min() < 0 or values.max() > 255:
        raise DatasetError(f"{where}: pixel values outside 0..255")
    return values.astype(np.uint8).reshape(n, n)


def parse_fer2013_csv(path: Path, *, limit: int | None = None) -> list[Fer2013Row]:
    """Every row of a FER2013 CSV (``emotion,pixels,Usage``), validated; errors name row and line.

    The one parser of this format: the trainer and ``make import`` read the same files the same way.
    ``limit``: stop after that many rows (a quick check of the header and the first rows).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"FER2013 CSV not found: {path}")
    rows: list[Fer2013Row] = []
    side = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [c.strip() for c in next(reader, [])]  # the ICML copy has " Usage", " pixels"
            missing = [c for c in FER2013_COLUMNS if c not in header]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {missing}; found {header} "
                                   f"(expected header: {', '.join(FER2013_COLUMNS)})")
            col = {c: header.index(c) for c in FER2013_COLUMNS}
            for values in reader:
                if not any(v.strip() for v in values):
                    continue  # an empty line is not a row
                where = csv_row_where(path, len(rows), reader.line_num)
                if len(values) < len(header):
                    raise DatasetError(f"{where}: {len(values)} fields, expected {len(header)} ({', '.join(header)})")
                usage = fer2013_usage(values[col["Usage"]], where)
                label = _fer2013_label(values[col["emotion"]], where)
                pixels = _fer2013_pixels(values[col["pixels"]], where, side)
                side = pixels.shape[0]
                rows.append(Fer2013Row(where, len(rows), usage, label, pixels))
                if limit is not None and len(rows) >= limit:
                    break
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not a UTF-8 text CSV") from None
    except csv.Error as err:
        raise DatasetError(f"{path}: not a readable CSV ({err})") from None
    return rows


def blank_rows_note(blank: list[Fer2013Row]) -> str:
    """'N rows skipped as blank images (rows 0, 4, ...)': where the unusable rows are, without a huge line."""
    shown = ", ".join(str(r.row) for r in blank[:5])
    more = f" and {len(blank) - 5} more" if len(blank) > 5 else ""
    what = ("blank images (a single colour)" if all(r.blank for r in blank)
            else f"blank images or images too small to be faces (below {MIN_FACE_SIDE} px)")
    return f"{len(blank)} rows skipped as {what}: rows {shown}{more}"


def read_fer2013_csv(path: Path) -> dict[str, ImageSet]:
    """Read the FER2013 CSV into train (Training), val (PublicTest) and test (PrivateTest)."""
    path = Path(path)
    rows = parse_fer2013_csv(path)
    out = {}
    for split in FER2013_USAGE.values():
        part = [r for r in rows if r.split == split]
        good = [r for r in part if r.problem is None]
        if not good:
            continue
        order = canonical_order(r.label for r in good)
        idx = {c: i for i, c in enumerate(order)}
        out[split] = ImageSet(
            name=f"{path.stem}/{split}", class_names=order,
            labels=np.array([idx[r.label] for r in good], dtype=np.int32),
            pixels=np.stack([r.pixels for r in good]),
            skipped=[(r.where, r.problem) for r in part if r.problem is not None],
        )
    if "train" not in out:
        train = [r for r in rows if r.split == "train"]
        if not train:
            raise DatasetError(f"{path} has no Training rows")
        raise DatasetError(f"{path} has no usable Training rows: {blank_rows_note(train)}")
    return out


def read_dataset(path: Path, *, workers: int = 8) -> dict[str, ImageSet]:
    """Read a dataset's splits: {'train', 'val', 'test'} subsets, or {'all'} for a flat one."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_fer2013_csv(path)
    splits = split_dirs(path)
    exclusions = {(path / rel).resolve() for rel in read_exclusions(path)}
    if "all" in splits:
        return {"all": read_class_folders(path, name=path.name, workers=workers, exclusions=exclusions)}
    return {s: read_class_folders(p, name=f"{path.name}/{s}", workers=workers, exclusions=exclusions)
            for s, p in splits.items()}


def check_source(path: Path) -> None:
    """The quick part of :func:`read_dataset`: the folder layout (splits, class names, no empty class
    folder) or a CSV's header and first rows, so that a command reports such a mistake before it
    imports TensorFlow. Images are judged later, when the dataset is read."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        parse_fer2013_csv(path, limit=100)
        return
    for _ in iter_layout(path):
        pass


def folder_classes(path: Path) -> tuple[str, ...]:
    """Canonical classes of a class-per-folder set (its ``test/`` split if it has one), cheaply."""
    splits = split_dirs(path)
    root = splits.get("test") or splits.get("all")
    if root is None:
        raise DatasetError(f"{path} has neither a test/ split nor class folders at its top level")
    return canonical_order(class_dirs(root))


def evaluation_set(path: Path, *, workers: int = 8) -> ImageSet:
    """The images a cross-domain evaluation uses: the ``test/`` split, else the whole folder."""
    parts = read_dataset(path, workers=workers)
    for key in ("test", "all"):
        if key in parts:
            return parts[key]
    raise DatasetError(f"{path} has neither a test/ split nor class folders at its top level")
