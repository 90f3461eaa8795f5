"""Read video files frame by frame with OpenCV, and say in one line why one cannot be read.

OpenCV (its FFmpeg backend) opens any container whose codec its build carries. When it cannot,
it says only that it failed, so :func:`diagnose` looks at the file's first bytes to tell an empty
file, an unknown format, a file cut short (an MP4 whose index never got written, an AVI shorter
than its header) and a codec this build lacks apart. Frames are streamed, never held together.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

#: Containers fer-predict treats as video (decoded when this OpenCV build has the codec).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
#: --annotate output: container -> FourCC OpenCV's FFmpeg writer encodes without extra libraries.
WRITER_CODECS = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
#: Frames a header's count may exceed the frames decoded before a video counts as truncated
#: (some containers estimate the count from the duration).
COUNT_SLACK = 2


class VideoError(ValueError):
    """A video that cannot be (fully) read; the message is one line for the user. ``result``: what
    :func:`~fer_keras.predict.video.predict_video` had read by then (None before the first frame)."""

    result: Any = None


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: frame rate, announced frame count (0: unknown), size, codec."""

    path: Path
    fps: float
    frames: int
    width: int
    height: int
    codec: str


def _fourcc(code: float) -> str:
    text = int(code).to_bytes(4, "little").decode("ascii", "replace")
    return text.strip("\x00 ") or "?"


def _mp4_boxes(f: BinaryIO, size: int) -> tuple[str | None, bytes]:
    """Walk an MP4/MOV file's top-level boxes (headers only): what is wrong with them, if anything (a box
    running past the end of the file, no index), and the index (moov box) itself, up to 16 MB of it."""
    pos, moov = 0, b""
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        length, kind = struct.unpack(">I4s", head[:8])
        if length == 1 and len(head) == 16:
            length = struct.unpack(">Q", head[8:16])[0]
        elif length == 0:
            length = size - pos
        if length < 8 or pos + length > size:
            return f"truncated: the file ends inside its '{kind.decode('latin-1')}' box", moov
        if kind == b"moov":
            f.seek(pos)
            moov = f.read(min(length, 1 << 24))
        pos += length
    return (None if moov else "truncated: the MP4 index (moov box) is missing, the file was cut short"), moov


def _codec_tag(data: bytes) -> str | None:
    """The video codec tag in an AVI header (strf biCompression) or an MP4 index (the sample entry of the
    track whose handler is 'vide')."""
    at = data.find(b"strf")
    if data[:4] == b"RIFF" and at >= 0 and at + 28 <= len(data):
        return data[at + 24:at + 28].decode("latin-1")
    at = data.find(b"hdlr")
    while at >= 0:
        if data[at + 12:at + 16] == b"vide" and (stsd := data.find(b"stsd", at)) >= 0 and stsd + 20 <= len(data):
            return data[stsd + 16:stsd + 20].decode("latin-1")
        at = data.find(b"hdlr", at + 4)
    return None


def diagnose(path: Path) -> str:
    """Why OpenCV could not open ``path``, in a few words."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as f:
        header = f.read(1 << 20)
        if header[4:8] == b"ftyp":
            problem, index = _mp4_boxes(f, size)
            container = "MP4/MOV"
        elif header[:4] == b"RIFF" and header[8:12] == b"AVI ":
            riff = struct.unpack("<I", header[4:8])[0] + 8
            problem = f"truncated: {size} of the {riff} bytes its header announces" if riff > size else None
            index, container = header, "AVI"
        elif header[:4] == b"\x1a\x45\xdf\xa3":
            problem, index, container = None, b"", "Matroska/WebM"
        else:
            return "not a video OpenCV can read (unknown or damaged format)"
    if problem:
        return problem
    tag = _codec_tag(index)
    what = f"its '{tag}' video stream" if tag else "its video stream"
    return (f"no usable codec: OpenCV's FFmpeg cannot decode {what} ({container} container); "
            "convert it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")


@contextmanager
def open_video(path: Path) -> Iterator[tuple[cv2.VideoCapture, VideoInfo]]:
    """An open capture and its :class:`VideoInfo`; :class:`VideoError` when it cannot be opened."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: {diagnose(path)}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise VideoError(f"{path}: the container gives no frame rate, so frames have no times")
        info = VideoInfo(path, float(fps), max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         _fourcc(cap.get(cv2.CAP_PROP_FOURCC)))
        yield cap, info
    finally:
        cap.release()


def frames(cap: cv2.VideoCapture, info: VideoInfo,
           wanted: Callable[[int], bool]) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, BGR frame) for each frame; the frame is None where ``wanted(index)`` is false (only
    grabbed, not converted). Ends with :class:`VideoError` when the first frame cannot be decoded
    or the stream stops well before the frame count its header announces."""
    index = 0
    while True:
        if wanted(index):
            ok, bgr = cap.read()
        else:
            ok, bgr = cap.grab(), None
        if not ok:
            break
        yield index, bgr
        index += 1
    if index == 0:
        raise VideoError(_no_first_frame(info))
    if index < info.frames - COUNT_SLACK:
        raise VideoError(f"{info.path}: truncated or damaged after frame {index - 1} "
                         f"(read {index} of the {info.frames} frames its header announces)")


def _no_first_frame(info: VideoInfo) -> str:
    if info.frames == 0:
        return f"{info.path}: the video has zero frames"
    return f"{info.path}: no usable codec: its first frame ('{info.codec}') cannot be decoded"


def probe(path: Path) -> VideoInfo:
    """Open ``path`` and decode its first frame, so a bad video is refused before a model loads."""
    with open_video(path) as (cap, info):
        if not cap.grab():
            raise VideoError(_no_first_frame(info))
        return info


def sampler(every: int | None, fps: float | None, video_fps: float) -> Callable[[int], bool]:
    """``wanted(index)``: every ``every``-th frame from the first, or about ``fps`` frames a second
    (the first frame at or after each 1/fps step; every frame when ``fps`` is the video's or more)."""
    if fps is None:
        step = 1 if every is None else every
        if step < 1:
            raise ValueError(f"every must be >= 1, got {step}")
        return lambda index: index % step == 0
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    ratio = fps / video_fps

    def wanted(index: int) -> bool:
        # Frame i (at i / video_fps) is the first at or after k / fps when that falls in ((i - 1), i] / video_fps.
        return index == 0 or np.floor(index * ratio + 1e-9) > np.floor((index - 1) * ratio + 1e-9)

    return wanted

class AnnotatedWriter:
    """An output video at the input's frame rate, codec chosen by the file's suffix. It opens on the
    first frame, at that frame's size (OpenCV turns phone videos upright, so the header's size can be
    the wrong way round)."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        self.codec = WRITER_CODECS.get(path.suffix.lower())
        if self.codec is None:
            raise VideoError(f"--annotate {path}: write a {', '.join(WRITER_CODECS)} file")
        self.path, self.fps = path, info.fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.codec), self.fps,
                                           (bgr.shape[1], bgr.shape[0]))
            if not self._writer.isOpened():
                raise VideoError(f"--annotate {self.path}: OpenCV has no usable '{self.codec}' encoder "
                                 f"for {self.path.suffix}")
        self._writer.write(bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
