"""Find faces and cut them out as BTFER did: MTCNN box + 20 px margin, clipped, resized to 256x256.

Here, not in data_prep, because inference (``fer_keras.predict``) must crop a photo's faces
exactly as the training data was cropped; ``data_prep.crop`` runs this over whole folders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fer_keras.data.image_types import MAX_PIXELS


@dataclass(frozen=True)
class Face:
    """A detection: box as (x, y, width, height) in pixels, and the detector's confidence."""

    box: tuple[int, int, int, int]
    confidence: float


Detector = Callable[[np.ndarray], Sequence[Face]]


class MTCNNDetector:
    """The ``mtcnn`` package's detector (Zhang et al. 2016), boxes only (no landmarks needed)."""

    def __init__(self, threads: int | None = None) -> None:
        import tensorflow as tf  # deferred: workers and stubbed tests need no TensorFlow
        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TF already initialised in this process
                pass
        from mtcnn import MTCNN
        self._mtcnn = MTCNN(stages="face_detection_only")

    def __call__(self, rgb: np.ndarray) -> list[Face]:
        found = self._mtcnn.detect_faces(rgb)
        return [Face(tuple(int(round(v)) for v in f["box"]), float(f["confidence"]))
                for f in found]


@dataclass(frozen=True)
class CropOptions:
    """Everything that decides what a crop looks like; stored so a resume cannot mix settings."""

    margin: int = 20
    size: int = 256
    select: str = "largest"          # largest | confident | all
    min_face: int = 20               # shorter box side in source pixels
    min_confidence: float = 0.9
    ext: str = ".jpg"
    quality: int = 95
    max_pixels: int = MAX_PIXELS

    def __post_init__(self) -> None:
        if self.select not in ("largest", "confident", "all"):
            raise ValueError(f"select must be largest, confident or all, got {self.select!r}")
        if self.margin < 0 or self.size < 1:
            raise ValueError(f"margin must be >= 0 and size >= 1, got {self.margin}, {self.size}")
        if self.ext not in (".jpg", ".png"):
            raise ValueError(f"ext must be .jpg or .png, got {self.ext!r}")


def crop_box(box: tuple[int, int, int, int], margin: int, width: int,
             height: int) -> tuple[int, int, int, int]:
    """Box (x, y, w, h) grown by ``margin`` on every side and clipped: (x0, y0, x1, y1)."""
    x, y, w, h = box
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box} lies outside the {width}x{height} image")
    return x0, y0, x1, y1


def select_faces(faces: Sequence[Face], opts: CropOptions) -> tuple[list[Face], str]:
    """Faces to crop, or an empty list and the reject reason."""
    if not faces:
        return [], "no face detected"
    ok = [f for f in faces
          if min(f.box[2], f.box[3]) >= opts.min_face and f.confidence >= opts.min_confidence]
    if not ok:
        best = max(faces, key=lambda f: f.confidence)
        return [], (f"{len(faces)} face(s) below min size {opts.min_face}px or confidence "
                    f"{opts.min_confidence} (best: {min(best.box[2:])}px, {best.confidence:.3f})")
    if opts.select == "all":
        return sorted(ok, key=lambda f: (f.box[0], f.box[1])), ""
    if opts.select == "confident":
        return [max(ok, key=lambda f: f.confidence)], ""
    return [max(ok, key=lambda f: f.box[2] * f.box[3])], ""


def crop_faces(rgb: np.ndarray, faces: Sequence[Face], opts: CropOptions) -> list[np.ndarray]:
    """Cut and resize each face (INTER_AREA shrinking, INTER_CUBIC enlarging)."""
    h, w = rgb.shape[:2]
    out = []
    for f in faces:
        x0, y0, x1, y1 = crop_box(f.box, opts.margin, w, h)
        patch = rgb[y0:y1, x0:x1]
        grow = opts.size > max(patch.shape[:2])
        out.append(cv2.resize(patch, (opts.size, opts.size),
                              interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA))
    return out
