"""Safe image I/O: decode anything a user collects into 8-bit RGB, write it back clean.

Collected images come as CMYK JPEGs, 16-bit PNGs, palettes with transparency, phone photos
with EXIF rotation, truncated downloads and the odd 20,000 px panorama. All of them either
become a plain RGB array or raise ``BadImageError`` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_keras.data.image_types import MAX_PIXELS, to_8bit


class BadImageError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, compositing transparency onto white."""
    img = to_8bit(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    if img.mode == "CMYK":
        # PIL's CMYK->RGB handles Adobe's inverted CMYK JPEGs at decode time.
        img = img.convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def open_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``path`` to an 8-bit RGB PIL image, EXIF rotation applied.

    Huge JPEGs are decoded at a reduced scale (``draft``) so a panorama cannot exhaust
    memory; huge images of other formats raise ``BadImageError``.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
        w, h = img.size
        if w * h > max_pixels:
            if img.format == "JPEG":
                scale = (max_pixels / (w * h)) ** 0.5
                img.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
            if img.size[0] * img.size[1] > max_pixels:
                raise BadImageError(
                    f"{path}: {w}x{h} px is above the decode cap of {max_pixels} pixels")
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImageError(f"{path}: too large to decode safely ({e})") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImageError(f"{path}: unreadable or truncated image ({e})") from None


def save_clean(img: Image.Image | np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    """Write a fresh encode with no metadata (EXIF, GPS, ICC, comments), atomically.

    Atomic (temporary file + rename) so an interrupted run never leaves half a file that a
    resumed run would mistake for a finished one.
    """
    path = Path(path)
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    # A new image from raw pixels carries no info dict, hence no metadata at all.
    clean = Image.frombytes(img.mode, img.size, img.tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if fmt == "JPEG":
                clean.save(f, fmt, quality=quality)
            else:
                clean.save(f, fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """Content hash of the file's bytes (exact duplicates, anonymous names)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
