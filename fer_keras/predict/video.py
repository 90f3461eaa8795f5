"""Expressions over time: a :class:`~fer_keras.predict.predictor.Predictor` run over a video file.

Every ``every``-th frame (or about ``fps`` a second) is searched for faces and each face is
classified exactly as a photo's is (MTCNN, BTFER's crop, the run's TTA); an :class:`IoUTracker`
gives each person a ``face`` id that stays with them. Frames are streamed: memory stays flat
however long the video. Rows go to the ``out`` CSV as each frame is done (JSON: when the video
ends or fails), so a truncated video, an error or Ctrl-C leaves a valid file of the frames read.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from fer_keras.data.faces import CropOptions, Detector, Face, crop_faces, select_faces
from fer_keras.predict.tracker import Box, IoUTracker
from fer_keras.predict.video_io import AnnotatedWriter, VideoError, VideoInfo, frames, open_video, sampler

OUT_FORMATS = (".csv", ".json")


@dataclass(frozen=True)
class FaceRow:
    """One face in one sampled frame: where, when, which person (``face``) and what the model says."""

    frame: int
    #: Seconds from the start: frame / the container's frame rate.
    time: float
    face: int
    #: Detector box (x, y, width, height); the whole frame without detection.
    box: Box
    face_confidence: float | None
    label: str
    #: Per-class probabilities in the run's class order.
    probabilities: dict[str, float]

    @property
    def probability(self) -> float:
        return self.probabilities[self.label]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "probability": self.probability}


@dataclass
class VideoSummary:
    """Counts and timings of one video; ``error`` says why it ended early, if it did."""

    frames_read: int = 0
    frames_sampled: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    rows: int = 0
    detect_s: float = 0.0
    classify_s: float = 0.0
    wall_s: float = 0.0
    error: str | None = None

    def per_frame(self) -> dict[str, float]:
        """Mean seconds per sampled frame: detection, classification and everything (reading, writing)."""
        n = max(1, self.frames_sampled)
        return {"detection_s": self.detect_s / n, "classification_s": self.classify_s / n, "wall_s": self.wall_s / n}

    def lines(self, info: VideoInfo) -> list[str]:
        t = self.per_frame()
        return [f"frames: {self.frames_read} read ({self.frames_read / info.fps:.1f} s at {info.fps:g} fps), "
                f"{self.frames_sampled} sampled, {self.frames_with_faces} with a face; "
                f"faces: {self.faces}; rows: {self.rows}",
                f"per sampled frame: detection {t['detection_s']:.3f} s, classification {t['classification_s']:.3f} s, "
                f"all {t['wall_s']:.3f} s ({self.wall_s:.1f} s in all)"]


@dataclass
class VideoResult:
    """What :func:`predict_video` read: the container's info, the rows in frame order, counts and timings."""

    info: VideoInfo
    classes: tuple[str, ...]
    rows: list[FaceRow] = field(default_factory=list)
    summary: VideoSummary = field(default_factory=VideoSummary)

    def faces(self) -> list[dict[str, Any]]:
        """Per face id: first and last time seen, sampled frames, most frequent label and its share."""
        by_face: dict[int, list[FaceRow]] = {}
        for r in self.rows:
            by_face.setdefault(r.face, []).append(r)
        out = []
        for face, rows in sorted(by_face.items()):
            label, n = Counter(r.label for r in rows).most_common(1)[0]
            out.append({"face": face, "first_s": rows[0].time, "last_s": rows[-1].time, "frames": len(rows),
                        "label": label, "share": n / len(rows)})
        return out

    def plot(self, path: str | Path) -> list[Path]:
        """Each face's probabilities over time as ``path`` (PNG) and a PDF beside it (matplotlib loads only now)."""
        from fer_keras.predict.video_plot import plot_faces

        return plot_faces(self, path)


class RowSink:
    """The ``out`` file: CSV rows appended and flushed per frame, or JSON written whole on close."""

    def __init__(self, path: Path, classes: tuple[str, ...], header: dict[str, Any]) -> None:
        if path.suffix.lower() not in OUT_FORMATS:
            raise ValueError(f"--out {path}: the file must end in .csv or .json")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.classes, self.header = path, classes, header
        self._json: list[dict[str, Any]] | None = None
        self._csv = None
        if path.suffix.lower() == ".json":
            self._json = []
        else:
            self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._csv = csv.writer(self._file)
            self._csv.writerow(["source", "frame", "time", "face", "x", "y", "w", "h", "face_confidence", "label",
                                "probability", "tta", *(f"p_{c}" for c in classes)])

    def write(self, rows: list[FaceRow]) -> None:
        if self._json is not None:
            self._json += [r.as_dict() for r in rows]
            return
        source, tta = self.header["source"], self.header["tta"]
        for r in rows:
            self._csv.writerow([source, r.frame, f"{r.time:.3f}", r.face, *r.box, r.face_confidence, r.label,
                                r.probability, tta, *(r.probabilities[c] for c in self.classes)])
        self._file.flush()

    def close(self, summary: VideoSummary) -> None:
        if self._json is None:
            self._file.close()
            return
        doc = {**self.header, "classes": list(self.classes), "summary": asdict(summary),
               "per_sampled_frame": summary.per_frame(),
               "predictions": self._json}
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, self.path)


def _detect(rgb: np.ndarray, detector: Detector | None, min_face_confidence: float) -> list[Face]:
    """The faces of one frame that pass the photo path's checks (size, confidence); the whole frame without a
    detector."""
    if detector is None:
        return [Face((0, 0, rgb.shape[1], rgb.shape[0]), float("nan"))]
    return select_faces(detector(rgb), CropOptions(select="all", min_confidence=min_face_confidence))[0]


def draw(bgr: np.ndarray, rows: list[FaceRow]) -> np.ndarray:
    """``bgr`` with each row's box, face id, label and probability drawn on it."""
    scale = max(0.4, bgr.shape[0] / 720)
    line = max(1, round(2 * scale))
    for r in rows:
        x, y, w, h = r.box
        cv2.rectangle(bgr, (x, y), (x + w - 1, y + h - 1), (40, 40, 255), line)
        text = f"{r.face}: {r.label} {r.probability:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, line)
        top = y - th - base - 2 * line if y > th + base + 2 * line else y
        cv2.rectangle(bgr, (x, top), (x + tw + 2 * line, top + th + base + 2 * line), (40, 40, 255), -1)
        cv2.putText(bgr, text, (x + line, top + th + line), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (255, 255, 255), line, cv2.LINE_AA)
    return bgr


def predict_video(predictor, path: str | Path, *, every: int | None = None, fps: float | None = None,
                  detect_faces: bool = True, detector: Detector | None = None,
                  min_face_confidence: float | None = None, batch_size: int = 32, out: str | Path | None = None,
                  annotate: str | Path | None = None, progress: bool = False,
                  tracker: IoUTracker | None = None) -> VideoResult:
    """Faces found, followed and classified in every ``every``-th frame (or ``fps`` a second) of ``path``.

    ``detector``: a callable RGB -> faces (default: the predictor's MTCNN); ``detect_faces=False``
    treats each frame as one face crop. ``out`` (.csv / .json) receives the rows as they come,
    ``annotate`` (.mp4 / .avi / .mov / .mkv) every frame with the latest boxes and labels drawn.
    Raises :class:`VideoError` (its ``result`` holds what was read) for a video that cannot be
    opened, decoded or read to its end; a video without faces returns no rows.
    """
    from fer_keras.predict.predictor import MIN_FACE_CONFIDENCE

    path = Path(path)
    out, annotate = (None if f is None else Path(f) for f in (out, annotate))
    start = time.perf_counter()
    min_conf = MIN_FACE_CONFIDENCE if min_face_confidence is None else min_face_confidence
    detector = (detector or predictor.detect) if detect_faces else None
    tracker = tracker or IoUTracker()
    with open_video(path) as (cap, info):
        wanted = sampler(every, fps, info.fps)
        result = VideoResult(info, predictor.classes)
        summary = result.summary
        header = {"source": str(path), "model": str(predictor.source or "built-in"), "tta": predictor.tta.name,
                  "video": {"fps": info.fps, "frames": info.frames, "width": info.width, "height": info.height,
                            "codec": info.codec}, "every": every, "sample_fps": fps}
        sink = RowSink(out, predictor.classes, header) if out is not None else None
        writer: AnnotatedWriter | None = None
        try:
            writer = AnnotatedWriter(annotate, info) if annotate is not None else None
            shown: list[FaceRow] = []
            with tqdm(total=info.frames or None, unit="frame", desc=path.name, disable=not progress) as bar:
                for index, bgr in frames(cap, info, lambda i: writer is not None or wanted(i)):
                    summary.frames_read += 1
                    if wanted(index):
                        shown = _frame_rows(predictor, bgr, index, index / info.fps, detector, min_conf,
                                            batch_size, tracker, summary)
                        result.rows += shown
                        if sink is not None:
                            sink.write(shown)
                        bar.set_postfix(faces=tracker.count, refresh=False)
                    if writer is not None:
                        writer.write(draw(bgr, shown))
                    bar.update()
        except VideoError as err:
            summary.error = str(err)
            err.result = result
            raise
        finally:
            summary.faces, summary.rows = tracker.count, len(result.rows)
            summary.wall_s = time.perf_counter() - start
            if sink is not None:
                sink.close(summary)
            if writer is not None:
                writer.close()
    return result


def _frame_rows(predictor, bgr: np.ndarray, index: int, t: float, detector: Detector | None, min_conf: float,
                batch_size: int, tracker: IoUTracker, summary: VideoSummary) -> list[FaceRow]:
    """Detect, track and classify the faces of one sampled frame, adding to ``summary``'s counts and times."""
    summary.frames_sampled += 1
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    tic = time.perf_counter()
    faces = _detect(rgb, detector, min_conf)
    summary.detect_s += time.perf_counter() - tic
    if not faces:
        return []
    summary.frames_with_faces += 1
    tic = time.perf_counter()  # cropping and resizing count as classification, as in fer-predict's photo timing
    patches = crop_faces(rgb, faces, predictor.crop) if detector is not None else [rgb]
    probs = predictor.probabilities(np.stack([predictor.model_input(p) for p in patches]), batch_size)
    summary.classify_s += time.perf_counter() - tic
    ids = tracker.update([f.box for f in faces], t)
    classes = predictor.classes
    return [FaceRow(index, t, face, f.box, None if np.isnan(f.confidence) else f.confidence,
                    classes[int(np.argmax(p))], dict(zip(classes, map(float, p), strict=True)))
            for face, f, p in zip(ids, faces, probs, strict=True)]
