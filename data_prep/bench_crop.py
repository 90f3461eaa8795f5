"""Crop throughput on synthetic 256 px inputs: skimage's astronaut face pasted at varied places.

Usage: python -m data_prep.bench_crop [--n 40] [--workers 1 2] [--dir /tmp/bench_crop]
Reports images/s end to end (worker start-up, TensorFlow import and MTCNN load included)
and after start-up (from the first finished image), per worker count.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .crop import CropOptions, crop_folder


def make_inputs(folder: Path, n: int, size: int = 256, seed: int = 0) -> None:
    """``n`` size-px images, each with the astronaut's face at a random scale and place."""
    from skimage import data  # dev extra

    photo = Image.fromarray(data.astronaut())
    face = photo.crop((135, 25, 315, 205))          # face plus some hair and suit
    background = photo.crop((0, 300, 512, 512))     # suit and flag, no face
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        bg = background.resize((size, size)).rotate(int(rng.integers(0, 4)) * 90)
        side = int(rng.integers(size // 3, int(size * 0.8)))
        x, y = (int(v) for v in rng.integers(0, size - side, 2))
        bg.paste(face.resize((side, side)), (x, y))
        bg.save(folder / f"astro_{i:03d}.jpg", quality=92)


def bench(folder: Path, out: Path, workers: int) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = crop_folder(folder, out, CropOptions(), workers=workers, progress=False)
    total = time.perf_counter() - t0
    # Steady state: spread of output file times, i.e. from the first to the last crop written.
    stamps = sorted(p.stat().st_mtime for p in out.rglob("*.jpg"))
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return {"workers": workers, "images": s.total, "cropped": s.cropped,
            "rejected": s.rejected, "seconds": round(total, 2),
            "images_per_s": round(s.total / total, 2), "steady_images_per_s": round(steady, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.bench_crop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dir", type=Path, default=Path("/tmp/bench_crop"))
    a = p.parse_args(argv)
    src = a.dir / "inputs"
    shutil.rmtree(src, ignore_errors=True)
    make_inputs(src, a.n)
    for w in a.workers:
        print(bench(src, a.dir / f"out_w{w}", w), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
