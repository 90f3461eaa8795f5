"""Which files are images: the one list of image types, shared by the readers, data_prep and predict.

Here, not in data_prep, so reading a dataset never imports the preparation tools.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: The one list of image types: formats the training pipeline (``pipeline.decode_bytes``) decodes,
#: with their file suffixes. A dataset holds only these; everything else is skipped with a reason.
DECODABLE_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",), "GIF": (".gif",), "WEBP": (".webp",),
}
IMAGE_SUFFIXES = frozenset(s for suffixes in DECODABLE_FORMATS.values() for s in suffixes)
#: Raw inputs that crop and the importers read and re-encode, but training cannot decode.
CONVERTIBLE_SUFFIXES = IMAGE_SUFFIXES | {".tif", ".tiff", ".pgm", ".ppm"}
#: Decode cap: larger JPEGs are decoded at reduced scale (draft), other formats rejected.
MAX_PIXELS = 50_000_000
#: The smallest face the suite accepts, on the shorter side in pixels: the smallest input a model takes
#: (``RunConfig.res``), a third of FER2013's 48 px. A smaller image is upscaled from too little to hold an
#: expression, so training, evaluation, ``balance`` and prediction skip it with a reason, like a blank one.
MIN_FACE_SIDE = 16


def too_small(width: int, height: int) -> str | None:
    """Why a ``width`` x ``height`` image cannot be a face (None when it can): the one size rule."""
    if min(width, height) >= MIN_FACE_SIDE:
        return None
    return f"too small to be a face ({width}x{height} px; the shorter side needs at least {MIN_FACE_SIDE} px)"


def is_image(path: Path, *, convertible: bool = False) -> bool:
    """An image file by its suffix: one training decodes, or with ``convertible`` one we can convert."""
    suffixes = CONVERTIBLE_SUFFIXES if convertible else IMAGE_SUFFIXES
    return path.suffix.lower() in suffixes and not path.name.startswith(".")


def list_images(root: Path, *, convertible: bool = False) -> list[Path]:
    """Every image under ``root``, sorted, as paths relative to ``root`` (hidden files skipped)."""
    root = Path(root)
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and is_image(p, convertible=convertible)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit greyscale scaled to 8 bits as decoders do (65535 -> 255), never clipped at 255."""
    if img.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return img
    a = np.asarray(img, dtype=np.float64)
    hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
    return Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
