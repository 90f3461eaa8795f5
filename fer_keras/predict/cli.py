"""fer-predict: what expression is on this photo (or on every photo in a folder)?

Finds faces with MTCNN (``--no-detect`` for images that already are face crops), classifies
each with a trained run (``--run``; default: the built-in model) and prints a table.
``--out`` writes CSV or JSON, ``--annotate`` writes copies of the images with boxes and labels.
A video (clip.mp4, .avi, .mov, .mkv, ...) gives a row per face per sampled frame (``--every N``,
``--fps F``), faces followed across frames, a plot of their expressions over time (``--plot``)
and with ``--annotate`` an annotated copy of the video.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from PIL import ImageDraw, ImageFont

from fer_keras.console import CommandParser, notices, quiet_tensorflow
from fer_keras.data.image_types import is_image, list_images
from fer_keras.data.images import BadImageError, open_rgb
from fer_keras.evaluate.tta import NAMES as TTA_NAMES
from fer_keras.evaluate.tta import TTA, ZOOM_TEXT
from fer_keras.runs import check_writable

PROG = "fer-predict"
OUT_FORMATS = (".csv", ".json")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = CommandParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo", type=Path, metavar="PHOTO_FOLDER_OR_VIDEO",
                   help="an image, a folder of images, or a video file (.mp4, .avi, .mov, .mkv, .webm, ...)")
    p.add_argument("--run", type=Path, default=None,
                   help="a run folder or a .keras file (default: the built-in model)")
    p.add_argument("--out", type=Path, default=None, help="also write the results to results.csv or results.json")
    p.add_argument("--annotate", type=Path, default=None, metavar="OUT_DIR",
                   help="write each image with its boxes, labels and probabilities here "
                        "(a video: its copy, OUT_DIR/<name>.mp4, or a .mp4/.mov/.avi/.mkv file named here)")
    p.add_argument("--detect", action=argparse.BooleanOptionalAction, default=True,
                   help="find faces with MTCNN first; --no-detect for images that are face crops (default: detect)")
    p.add_argument("--tta", choices=TTA_NAMES, default=None,
                   help="average each face's probabilities over test-time views: its mirror image (flip), "
                        f"{ZOOM_TEXT.replace('%', '%%')} (zoom) or both "
                        "(default: as the run was evaluated, its config's tta_flip / tta_zoom)")
    p.add_argument("--no-tta", dest="tta", action="store_const", const="none", help="same as --tta none")
    p.add_argument("--batch", type=int, default=32, help="faces classified per model call (default: 32)")
    p.add_argument("--prior-correction", action="store_true",
                   help="correct the probabilities for the training set's class mix (logit adjustment with the "
                        "run's tau, chosen on its validation split): for a balanced mix of expressions")
    video = p.add_argument_group("videos")
    sampling = video.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, default=None, metavar="N",
                          help="analyse every N-th frame (default: every frame)")
    sampling.add_argument("--fps", type=float, default=None, metavar="F", help="analyse about F frames a second")
    video.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                       help="each face's expression probabilities over time, as PNG and PDF "
                            "(default: beside --out, e.g. results.png)")
    return p.parse_args(argv)


def _check(args: argparse.Namespace) -> list[Path]:
    """The images to read; a bad request fails here, before TensorFlow is imported."""
    if not args.photo.exists():
        raise FileNotFoundError(f"{args.photo}: no such file or folder")
    if args.out is not None and args.out.suffix.lower() not in OUT_FORMATS:
        raise ValueError(f"--out {args.out}: the file must end in .csv or .json")
    if args.out is not None:
        _writable(args.out.parent, f"--out {args.out}")
    if args.annotate is not None:
        from fer_keras.predict.video_io import is_video

        video_file = is_video(args.photo) and is_video(args.annotate)  # a video's annotated copy, not a folder
        _writable(args.annotate.parent if video_file else args.annotate, f"--annotate {args.annotate}")
    if args.run is not None and not args.run.exists():
        raise FileNotFoundError(f"--run {args.run}: no such run folder or model file")
    if args.photo.is_dir():
        files = [args.photo / rel for rel in list_images(args.photo)]
        if not files:
            raise FileNotFoundError(f"{args.photo}: no images in this folder")
        return files
    from fer_keras.predict.video_io import is_video

    if is_video(args.photo):
        from fer_keras.predict.video_cli import check
        check(args)
        return [args.photo]
    if args.every is not None or args.fps is not None or args.plot is not None:
        raise ValueError("--every, --fps and --plot are for videos")
    if not is_image(args.photo):
        raise ValueError(f"{args.photo}: not an image file (expected one of .jpg .png .bmp .gif .tif .webp)")
    return [args.photo]


def _writable(folder: Path, what: str) -> None:
    """Fail now, not after inference, when ``folder`` cannot be created or written."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"{what}: {blocker} is a file, not a folder")
    try:
        check_writable(folder)
    except OSError as err:
        raise ValueError(f"{what}: cannot write in {folder} ({err.strerror or err})") from None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(predictions, root: Path) -> str:
    """The console table: one row per face (or crop, or image without a face)."""
    rows = [("image", "face", "box x,y,w,h", "face conf", "label", "prob")]
    for p in predictions:
        name = os.path.relpath(p.source, root) if root.is_dir() else p.source
        rows.append((name, "-" if p.face is None else str(p.face), ",".join(map(str, p.box)) if p.box else "-",
                     _fmt(p.face_confidence, ".3f"), p.label or f"({p.error})", _fmt(p.probability, ".3f")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(predictions, classes: tuple[str, ...], path: Path, model: str, tta: str = "none") -> None:
    """CSV (one row per face, a column per class) or JSON (with the model and its class order); both
    name the test-time augmentation (``tta``: none, flip, zoom or flip+zoom) the probabilities average."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"model": model, "tta": tta, "classes": list(classes),
                                    "predictions": [p.as_dict() for p in predictions]}, indent=2))
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "face", "x", "y", "w", "h", "face_confidence", "label", "probability", "tta",
                    *(f"p_{c}" for c in classes), "error"])
        for p in predictions:
            w.writerow([p.source, p.face, *(p.box or ("",) * 4), p.face_confidence, p.label, p.probability,
                        tta, *(p.probabilities.get(c, "") for c in classes), p.error or ""])


def annotate(predictions, root: Path, out_dir: Path) -> int:
    """Copies of the images with each face's box and ``label probability``; returns how many were written."""
    by_source: dict[str, list] = {}
    for p in predictions:
        if p.label is not None:
            by_source.setdefault(p.source, []).append(p)
    for source, preds in by_source.items():
        img = open_rgb(source)
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=max(12, img.height // 30))
        line = max(2, img.height // 200)
        for p in preds:
            x, y, w, h = p.box or (0, 0, img.width - 1, img.height - 1)
            if p.box:
                draw.rectangle((x, y, x + w, y + h), outline=(255, 40, 40), width=line)
            text = f"{p.label} {p.probability:.2f}"
            left, top, right, bottom = draw.textbbox((x, y), text, font=font)
            ty = y - (bottom - top) - 2 * line if p.box and y > bottom - top + 2 * line else y
            draw.rectangle((x, ty, x + right - left + 2 * line, ty + bottom - top + 2 * line), fill=(255, 40, 40))
            draw.text((x + line, ty + line - (top - y)), text, fill=(255, 255, 255), font=font)
        rel = Path(os.path.relpath(source, root)) if root.is_dir() else Path(Path(source).name)
        target = out_dir / rel
        if target.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            target = target.with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        img.save(target, quality=95)  # PNG ignores the quality
    return len(by_source)


def run(args: argparse.Namespace) -> int:
    files = _check(args)
    quiet_tensorflow(args.verbose)
    from fer_keras.predict.predictor import load_run

    predictor = load_run(args.run, tta=None if args.tta is None else TTA.named(args.tta),
                         prior=args.prior_correction)
    if args.photo.is_file() and not is_image(args.photo):  # a video: _check lets no other file through
        from fer_keras.predict.video_cli import run_video
        return run_video(args, predictor)
    single = not args.photo.is_dir()
    predictions = predictor.predict(files, detect_faces=args.detect, batch_size=args.batch,
                                    errors="raise" if single else "report", progress=not single)
    if single and predictions[0].label is None:
        hint = " (for a face crop, pass --no-detect)" if args.detect else ""
        raise ValueError(f"{args.photo}: {predictions[0].error}{hint}")
    print(f"model: {predictor.source or 'built-in'} ({predictor.model.name}, {predictor.res} px, "
          f"TTA {predictor.tta.name}{f', prior correction tau {predictor.prior.tau:g}' if predictor.prior else ''})")
    print(table(predictions, args.photo))
    if args.out is not None:
        write_results(predictions, predictor.classes, args.out, str(predictor.source), predictor.tta.name)
        print(f"results -> {args.out}")
    if args.annotate is not None:
        n = annotate(predictions, args.photo, args.annotate)
        print(f"{n} annotated image(s) -> {args.annotate}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with notices(PROG):  # a model without class names: one note line, not a Python warning
            return run(args)
    except (FileNotFoundError, ValueError, BadImageError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a write that failed after all (disk full): the file and the cause
        print(f"{PROG}: error: {f'{e.filename}: ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
