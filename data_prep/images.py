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

#: The one list of image types: formats the training pipeline (``tf.io.decode_image``) decodes,
#: with their file suffixes. A dataset holds only these; everything else is skipped with a reason.
DECODABLE_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",), "GIF": (".gif",), "WEBP": (".webp",),
}
IMAGE_SUFFIXES = frozenset(s for suffixes in DECODABLE_FORMATS.values() for s in suffixes)
#: Raw inputs that crop and the importers read and re-encode, but training cannot decode.
CONVERTIBLE_SUFFIXES = IMAGE_SUFFIXES | {".tif", ".tiff", ".pgm", ".ppm"}
#: Decode cap: larger JPEGs are decoded at reduced scale (draft), other formats rejected.
MAX_PIXELS = 50_000_000


class BadImageError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


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
