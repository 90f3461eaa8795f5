"""Decode anything a user collects into 8-bit RGB, or fail with ``BadImageError`` naming the file.

Collected images come as CMYK JPEGs, 16-bit PNGs, palettes with transparency, phone photos
with EXIF rotation, truncated downloads and the odd 20,000 px panorama. Here, not in data_prep,
because inference (``fer_keras.predict``) opens user photos the same way the preparation tools do.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from fer_keras.data.image_types import MAX_PIXELS, to_8bit


class BadImageError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB by the suite's one alpha rule: transparency is dropped.

    The colour channels are kept as stored, the alpha channel ignored: what the training pipeline's
    ``tf.io.decode_png(channels=3)`` does (``fer_keras.data.pipeline.decode_bytes``), and Keras'
    ``load_img`` and the paper's ``flow_from_directory``. Compositing onto a background instead would
    give a run's photos other pixels than it was trained and scored on. The two kinds TensorFlow cannot
    decode by this rule (WebP with alpha, GIF with transparent pixels) are skipped by the trainer's
    ``check_image`` and converted by ``make import``.
    """
    img = to_8bit(img)
    if img.mode in ("P", "PA", "La", "RGBa"):
        # Palette transparency and premultiplied alpha resolved to plain RGBA first (PIL warns on P->RGB).
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    if img.mode == "CMYK":
        # PIL's CMYK->RGB handles Adobe's inverted CMYK JPEGs at decode time.
        img = img.convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation ``ImageOps.exif_transpose`` applies (1 upright, 2..8 a flip, a quarter turn or
    both); 1 for none or a value it ignores. Phones store pixels sideways and set this tag, and ``open_rgb``
    turns them upright for the predictor: the training pipeline reads it to do the same."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except (SyntaxError, struct.error, ValueError, OSError):  # a damaged EXIF block: the pixels are still fine
        return 1
    return int(value) if value in range(2, 9) else 1


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned by its EXIF orientation, as the training graph turns it (``pipeline.orient``); a damaged
    EXIF block leaves it as stored, in every reader alike."""
    return ImageOps.exif_transpose(img) if exif_orientation(img) != 1 else img


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
        img = upright(img)
        return _to_rgb(img)
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImageError(f"{path}: too large to decode safely ({e})") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImageError(f"{path}: unreadable or truncated image ({e})") from None


#: Training images looked at to tell a grey dataset from a colour one (``color: auto``).
COLOUR_SAMPLE = 64


def all_grey(paths: list[str], pixels=None, sample: int = COLOUR_SAMPLE) -> bool:
    """Whether the images (a seeded sample of ``sample`` files, or decoded ``pixels``) have R = G = B: a
    grey dataset (FER2013, CK+) that never shows a model colour."""
    import numpy as np

    if pixels is not None:
        return pixels.ndim == 3 or bool(np.all(pixels[..., 0] == pixels[..., 1]) and
                                        np.all(pixels[..., 1] == pixels[..., 2]))
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(paths))[:sample]:
        rgb = np.asarray(open_rgb(paths[i]))
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            return False
    return True
