"""Face crops as BTFER made them: MTCNN box + 20 px margin, clipped, resized to 256x256.

Resumable: every finished source image (cropped or rejected) is appended to
``crop_manifest.csv`` in the output folder, and outputs are written atomically before their
manifest line, so an interrupted run restarts exactly where it stopped.

Usage: python -m data_prep.crop --src RAW --dst CROPPED [--margin 20 --size 256 --workers N]
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fer_keras.console import VERBOSE_HELP, quiet_tensorflow
from fer_keras.data.exclusions import read_exclusions
from fer_keras.data.faces import CropOptions, Detector, Face, MTCNNDetector, crop_box, crop_faces, select_faces
from fer_keras.data.image_types import MAX_PIXELS, list_images

from .cli import run_step, step_parser
from .images import BadImageError, open_rgb, save_clean

MANIFEST = "crop_manifest.csv"
REJECTS = "crop_rejects.csv"
CONFIG = "crop_config.json"
FIELDS = ("source", "status", "faces", "outputs", "reason")
# The crop core (Face, CropOptions, MTCNNDetector, ...) lives in fer_keras.data.faces, shared with
# inference; it is re-exported here so `data_prep.crop` stays the one name users and tests know.
__all__ = ["CONFIG", "FIELDS", "MANIFEST", "REJECTS", "CropOptions", "CropSummary", "Detector", "Face",
           "MTCNNDetector", "crop_box", "crop_faces", "crop_folder", "main", "output_names", "process_one",
           "read_manifest", "select_faces", "write_rejects"]


def output_names(rel: Path, n: int, opts: CropOptions) -> list[Path]:
    if opts.select != "all":
        return [rel.with_suffix(opts.ext)]
    return [rel.with_name(f"{rel.stem}_face{i}{opts.ext}") for i in range(n)]


def process_one(src: Path, dst: Path, rel: Path, detector: Detector,
                opts: CropOptions) -> dict[str, str]:
    """Crop one source image; return its manifest row (never raises for a bad image)."""
    row = {"source": rel.as_posix(), "status": "rejected", "faces": "0", "outputs": "",
           "reason": ""}
    try:
        rgb = np.asarray(open_rgb(src / rel, opts.max_pixels))
    except BadImageError as e:
        row["reason"] = f"unreadable: {e}"
        return row
    faces = list(detector(rgb))
    row["faces"] = str(len(faces))
    chosen, reason = select_faces(faces, opts)
    if not chosen:
        row["reason"] = reason
        return row
    names = output_names(rel, len(chosen), opts)
    for name, patch in zip(names, crop_faces(rgb, chosen, opts), strict=True):
        save_clean(patch, dst / name, quality=opts.quality)
    row.update(status="ok", outputs="|".join(n.as_posix() for n in names))
    return row


# --- worker processes --------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(src: Path, dst: Path, factory: Callable[..., Detector], kwargs: dict,
                 opts: CropOptions, quiet: bool = False) -> None:
    if quiet:  # a spawned worker imports TensorFlow afresh: hide its log lines there too
        quiet_tensorflow()
    _WORKER.update(src=src, dst=dst, detector=factory(**kwargs), opts=opts)


def _work(rel: Path) -> dict[str, str]:
    w = _WORKER
    return process_one(w["src"], w["dst"], rel, w["detector"], w["opts"])


# --- manifest ----------------------------------------------------------------------------
def read_manifest(dst: Path) -> dict[str, dict[str, str]]:
    """Finished rows by source; a torn last line (killed mid-write) is cut off and redone."""
    file = dst / MANIFEST
    if not file.is_file():
        return {}
    data = file.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        file.write_bytes(data)
    rows = csv.DictReader(data.decode("utf-8").splitlines())
    return {r["source"]: r for r in rows if r.get("reason") is not None}


def _check_config(dst: Path, src: Path, opts: CropOptions) -> None:
    cfg = {"source": str(src.resolve()), "options": asdict(opts)}
    file = dst / CONFIG
    if file.is_file():
        old = json.loads(file.read_text(encoding="utf-8"))
        if old != cfg:
            raise FileExistsError(
                f"{dst} holds a crop of {old['source']} with options {old['options']}; "
                f"resuming with {cfg['source']} and {cfg['options']} would mix them. "
                f"Use a new output folder or the same settings.")
    elif dst.is_dir() and any(dst.iterdir()):
        raise FileExistsError(f"output folder {dst} is not empty and holds no crop; "
                              f"choose a new folder")
    dst.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(cfg, indent=1), encoding="utf-8")


def _check_collisions(rels: list[Path], opts: CropOptions) -> None:
    seen: dict[Path, Path] = {}
    for rel in rels:
        out = output_names(rel, 1, opts)[0]
        if out in seen:
            raise ValueError(f"{seen[out]} and {rel} would both be written as {out}; "
                             f"rename one of them")
        seen[out] = rel


@dataclass
class CropSummary:
    total: int
    skipped: int          # already finished by an earlier run
    cropped: int
    rejected: int
    faces_written: int


def crop_folder(src: str | os.PathLike, dst: str | os.PathLike, opts: CropOptions | None = None,
                *, workers: int | None = None, detector: Detector | None = None,
                detector_factory: Callable[..., Detector] = MTCNNDetector,
                factory_kwargs: dict | None = None, progress: bool = True,
                quiet: bool = False) -> CropSummary:
    """Crop every image under ``src`` into the same relative place under ``dst``.

    ``detector`` (an object, in-process) or ``detector_factory`` (built once per worker
    process) make the detector injectable; tests pass stubs. ``quiet``: hide TensorFlow's log
    lines in this process and in every worker (the command line's default).
    """
    src, dst, opts = Path(src), Path(dst), opts or CropOptions()
    if not src.is_dir():
        raise FileNotFoundError(f"source folder not found: {src}")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"output {dst} must not be inside the source {src}")
    excluded = read_exclusions(src)
    rels = [r for r in list_images(src, convertible=True) if r not in excluded]
    _check_collisions(rels, opts)
    _check_config(dst, src, opts)
    done = read_manifest(dst)
    todo = [r for r in rels if r.as_posix() not in done]
    workers = workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(todo))) if todo else 1
    new_file = not (dst / MANIFEST).is_file()
    counts = {"ok": 0, "rejected": 0, "faces": 0}
    with open(dst / MANIFEST, "a", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new_file:
            writer.writeheader()

        def record(row: dict[str, str]) -> None:
            writer.writerow(row)
            f.flush()
            counts[row["status"]] += 1
            counts["faces"] += len(row["outputs"].split("|")) if row["outputs"] else 0

        bar = tqdm(total=len(rels), initial=len(rels) - len(todo), unit="img",
                   desc="crop", disable=not progress, file=sys.stderr)
        if detector is not None or workers == 1:
            if quiet and detector is None:
                quiet_tensorflow()
            det = detector or detector_factory(**(factory_kwargs or {}))
            for rel in todo:
                record(process_one(src, dst, rel, det, opts))
                bar.update()
        else:
            kwargs = dict(factory_kwargs or {})
            if detector_factory is MTCNNDetector:
                kwargs.setdefault("threads", max(1, (os.cpu_count() or 1) // workers))
            ctx = mp.get_context("spawn")  # TensorFlow does not survive fork()
            with ctx.Pool(workers, _init_worker,
                          (src, dst, detector_factory, kwargs, opts, quiet)) as pool:
                for row in pool.imap_unordered(_work, todo, chunksize=4):
                    record(row)
                    bar.update()
        bar.close()
    write_rejects(dst)
    return CropSummary(len(rels), len(rels) - len(todo), counts["ok"], counts["rejected"],
                       counts["faces"])


def write_rejects(dst: Path) -> Path:
    """``crop_rejects.csv``: every rejected source with its reason (all runs so far)."""
    rows = [r for r in read_manifest(dst).values() if r["status"] == "rejected"]
    tmp = dst / (REJECTS + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, ("source", "faces", "reason"), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, dst / REJECTS)
    return dst / REJECTS


def main(argv: list[str] | None = None) -> int:
    p = step_parser("data_prep.crop", __doc__)
    p.add_argument("--src", required=True, type=Path, help="folder of collected images")
    p.add_argument("--dst", required=True, type=Path, help="output folder (mirrors --src)")
    p.add_argument("--margin", type=int, default=20, help="pixels added around the box")
    p.add_argument("--size", type=int, default=256, help="output side in pixels")
    p.add_argument("--select", choices=("largest", "confident", "all"), default="largest",
                   help="which face(s) to keep per image")
    p.add_argument("--min-face", type=int, default=20, help="min box side in source pixels")
    p.add_argument("--min-confidence", type=float, default=0.9)
    p.add_argument("--format", choices=("jpg", "png"), default="jpg")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="decode cap per image")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    a = p.parse_args(argv)
    opts = CropOptions(a.margin, a.size, a.select, a.min_face, a.min_confidence,
                       "." + a.format, a.quality, a.max_pixels)

    def work() -> None:
        s = crop_folder(a.src, a.dst, opts, workers=a.workers, quiet=not a.verbose)
        print(f"{s.total} images: {s.skipped} done earlier, {s.cropped} cropped "
              f"({s.faces_written} faces), {s.rejected} rejected -> {a.dst / REJECTS}")

    return run_step(work)


if __name__ == "__main__":
    raise SystemExit(main())
