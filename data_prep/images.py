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

from fer_keras.data.images import BadImageError, exif_orientation, open_rgb

__all__ = ["BadImageError", "clean_copy_suffix", "copy_without_metadata", "open_rgb", "save_clean", "sha256_file"]


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


#: JPEG segments kept by :func:`copy_without_metadata`: JFIF (APP0) and Adobe (APP14, which says how CMYK
#: and YCCK are stored); every other APPn (EXIF, GPS, XMP, ICC, IPTC, MPF) and comments go.
_JPEG_KEEP_APP = (0xE0, 0xEE)
#: PNG chunks kept: the image and what decoders read to draw it (no eXIf, text, time, ICC or APNG frames).
_PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"sBIT"}


def _jpeg_without_metadata(data: bytes) -> bytes:
    """The JPEG's segments up to its image data, metadata left out, then the image data to the first EOI
    (a phone's second picture, with its own EXIF, goes too)."""
    if data[:2] != b"\xff\xd8":
        raise BadImageError("not a JPEG stream")
    out, i = [b"\xff\xd8"], 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise BadImageError(f"corrupt JPEG marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        segment = data[i:i + 2 + length]
        if marker == 0xDA:  # start of scan: entropy-coded data (0xFF is stuffed there) up to the end marker
            end = data.find(b"\xff\xd9", i)
            return b"".join(out) + data[i:len(data) if end < 0 else end + 2]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE) or marker in _JPEG_KEEP_APP:
            out.append(segment)
        i += 2 + length
    raise BadImageError("truncated JPEG (no image data)")


def _png_without_metadata(data: bytes) -> bytes:
    """The PNG's chunks that draw the image; text, EXIF, time, ICC and the like left out."""
    out, i = [data[:8]], 8
    while i + 8 <= len(data):
        length = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        if kind in _PNG_KEEP:
            out.append(data[i:i + 12 + length])
        i += 12 + length
    return b"".join(out)


def _byte_copyable(path: Path) -> str | None:
    """The format of ``path`` when its bytes can be copied with the metadata left out (JPEG, PNG, BMP stored
    upright); None when only its decoded pixels can be (GIF, WebP, or stored turned: dropping the EXIF
    orientation would leave the image sideways, and a JPEG cannot be turned without re-encoding it)."""
    with Image.open(path) as img:
        copyable = img.format in ("JPEG", "MPO", "PNG", "BMP") and exif_orientation(img) == 1
        return img.format if copyable else None


def clean_copy_suffix(src: str | os.PathLike) -> str:
    """The suffix :func:`copy_without_metadata` gives the copy of ``src``: its own, or .png where it writes
    the decoded pixels."""
    return Path(src).suffix if _byte_copyable(Path(src)) else ".png"


def copy_without_metadata(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy an image without its metadata (EXIF, GPS, XMP, ICC, comments), its pixels unchanged.

    JPEG and PNG lose their metadata segments and chunks byte for byte, so no pixel is re-encoded; BMP has
    none. GIF, WebP and any image with an EXIF orientation other than 1 (a phone photo stored sideways)
    become a lossless PNG of the pixels ``open_rgb`` gives, upright (``dst`` then ends in .png): the
    orientation goes with the EXIF, so the copy must hold the pixels the pipeline and the predictor show a
    model. Returns the path written, atomically.
    """
    src, dst = Path(src), Path(dst)
    fmt = _byte_copyable(src)
    if fmt is None:
        dst = dst.with_suffix(".png")
        save_clean(open_rgb(src), dst)
        return dst
    data = src.read_bytes()
    if fmt in ("JPEG", "MPO"):
        clean = _jpeg_without_metadata(data)
    elif fmt == "PNG":
        clean = _png_without_metadata(data)
    else:
        clean = data  # BMP has no metadata fields
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=dst.suffix, dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(clean)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst
