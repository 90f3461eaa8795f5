"""``fer-predict clip.mp4``: the video half of the fer-predict CLI (:mod:`fer_keras.predict.cli` parses).

Prints a line per face (when seen, in how many sampled frames, its most frequent label) and a
summary; writes the rows (``--out``), the expressions-over-time plot (``--plot``, by default beside
``--out``) and an annotated copy (``--annotate``). A video that ends early still gets its outputs
for the frames read before the one error line.
"""

from __future__ import annotations

import argparse
import os

import cv2

from fer_keras.predict.video_io import VIDEO_EXTENSIONS, WRITER_CODECS, probe
from fer_keras.runs import check_writable

PLOT_FORMAT = ".png"
AV_LOG_QUIET = -8
#: Faces listed on the console (all are in --out).
MAX_TABLE_FACES = 20


def check(args: argparse.Namespace) -> None:
    """Reject a bad request or video before TensorFlow loads; fills in ``args.plot`` and ``args.annotate``."""
    if not args.photo.is_file():
        raise FileNotFoundError(f"{args.photo}: no such video file")
    if not args.verbose:  # OpenCV's and FFmpeg's own complaints ("moov atom not found"): the error line says it
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", str(AV_LOG_QUIET))  # read when OpenCV first opens a video
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    if args.every is not None and args.every < 1:
        raise ValueError(f"--every {args.every}: must be 1 or more")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps {args.fps:g}: must be more than 0")
    if args.plot is None and args.out is not None:
        args.plot = args.out.with_suffix(PLOT_FORMAT)
    if args.plot is not None and args.plot.suffix.lower() != PLOT_FORMAT:
        raise ValueError(f"--plot {args.plot}: the file must end in .png (a .pdf is written beside it)")
    if args.plot is not None:
        try:
            check_writable(args.plot.parent)
        except OSError as err:
            why = err.strerror or err
            raise ValueError(f"--plot {args.plot}: cannot write in {args.plot.parent} ({why})") from None
    if args.annotate is not None:
        if args.annotate.suffix.lower() in VIDEO_EXTENSIONS:
            if args.annotate.suffix.lower() not in WRITER_CODECS:
                raise ValueError(f"--annotate {args.annotate}: write a {', '.join(WRITER_CODECS)} file")
        else:  # a folder, as for photos: the annotated copy keeps the video's name
            args.annotate = args.annotate / f"{args.photo.stem}.mp4"
        if args.annotate.resolve() == args.photo.resolve():
            raise ValueError(f"--annotate {args.annotate}: would overwrite the input video")
    probe(args.photo)  # an unreadable video fails now, not after TensorFlow has loaded


def faces_table(result, most: int = MAX_TABLE_FACES) -> str:
    """One line per face id (the ``most`` seen in most frames): first and last time seen, sampled frames,
    most frequent label and its share."""
    faces = result.faces()
    shown = sorted(sorted(faces, key=lambda f: -f["frames"])[:most], key=lambda f: f["face"])
    rows = [("face", "first s", "last s", "frames", "label", "share")]
    rows += [(str(f["face"]), f"{f['first_s']:.2f}", f"{f['last_s']:.2f}", str(f["frames"]), f["label"],
              f"{f['share']:.2f}") for f in shown]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(shown) < len(faces):
        lines.append(f"(and {len(faces) - len(shown)} more, each seen in fewer frames)")
    return "\n".join(lines)


def report(args: argparse.Namespace, result) -> None:
    """The console lines and the plot for what was read (all of the video, or up to where it failed)."""
    if result.rows:
        print(faces_table(result))
    for line in result.summary.lines(result.info):
        print(line)
    if args.out is not None:
        print(f"results -> {args.out}")
    if args.plot is not None and result.rows:
        png, pdf = result.plot(args.plot)
        print(f"plot -> {png} (+ {pdf.name})")
    if args.annotate is not None and result.summary.frames_read:
        print(f"annotated video -> {args.annotate}")


def run_video(args: argparse.Namespace, predictor) -> int:
    """Analyse ``args.photo`` (a video) with a loaded predictor; errors end as one line in cli.main."""
    from fer_keras.predict.video import predict_video
    from fer_keras.predict.video_io import VideoError

    prior = getattr(predictor, "prior", None)
    print(f"model: {predictor.source or 'built-in'} ({predictor.model.name}, {predictor.res} px, "
          f"TTA {predictor.tta.name}{f', prior correction tau {prior.tau:g}' if prior else ''})")
    try:
        result = predict_video(predictor, args.photo, every=args.every, fps=args.fps, detect_faces=args.detect,
                               batch_size=args.batch, out=args.out, annotate=args.annotate, progress=True)
    except VideoError as err:
        if err.result is None or not err.result.summary.frames_read:
            raise
        report(args, err.result)
        kept = f"; the {err.result.summary.rows} rows of the frames read are in {args.out}" if args.out else ""
        raise VideoError(f"{err}{kept}") from None
    report(args, result)
    if not result.rows:
        hint = " (for a video of face crops, pass --no-detect)" if args.detect else ""
        raise ValueError(f"{args.photo}: no face found in the {result.summary.frames_sampled} sampled frames{hint}")
    return 0
