"""Safe image I/O for the preparation tools: decoding (``fer_keras.data.images``), clean writes, hashes.

Decoding lives in fer_keras, which inference shares; data_prep adds what only preparation needs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fer_keras.data.images import BadImageError, open_rgb

__all__ = ["BadImageError", "open_rgb", "save_clean", "sha256_file"]


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
