"""Face-crop throughput of ``data_prep.crop`` (MTCNN), with one worker and with all of them.

The crop is run as its command line, in a fresh interpreter, exactly as a user runs it.
A run on one image per worker measures the start-up
(Python, TensorFlow import, MTCNN weights, in every worker); the steady rate is the
n - w further images over the time the n-image run took beyond that start-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fer_keras.data.image_types import IMAGE_SUFFIXES
from fer_keras.timing import Stopwatch

MODULE = "data_prep.crop"
MIN_WORK_S = 2.0
REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO), *sys.path]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _command(module: str, src: Path, dst: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", module, "--src", str(src), "--dst", str(dst), "--workers", str(workers)]


def _timed(cmd: list[str], timeout: int) -> float:
    clock = Stopwatch()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[:3])} exited {done.returncode}: {' | '.join(tail)}")
    return clock.seconds


def _sample(source: Path, into: Path, n: int) -> int:
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    for i, p in enumerate(files):
        (into / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, into / p.parent.name / f"{i:05d}{p.suffix}")
    return len(files)


def crop_throughput(source: Path, n_images: int = 160, workers: tuple[int, ...] | None = None,
                    timeout: int = 1800, module: str = MODULE) -> dict:
    """Images/s of the crop CLI on ``n_images`` images of ``source``, per worker count."""
    workers = workers or tuple(sorted({1, os.cpu_count() or 1}))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_crop_") as tmp:
        tmp = Path(tmp)
        n = _sample(Path(source), tmp / "src", n_images)
        if n <= max(workers):
            return {"skipped": f"{source} holds {n} images, not more than the {max(workers)} workers"}
        for w in workers:
            _sample(Path(source), tmp / f"start_{w}", w)  # one image per worker
            try:
                t_one = _timed(_command(module, tmp / f"start_{w}", tmp / f"dst_start_{w}", w), timeout)
                t_all = _timed(_command(module, tmp / "src", tmp / f"dst_all_{w}", w), timeout)
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
                rows.append({"workers": w, "error": str(err)})
                continue
            # Too little work beyond start-up makes the difference noise: report nothing then.
            steady = (n - w) / (t_all - t_one) if t_all - t_one >= MIN_WORK_S else None
            rows.append({"workers": w, "images": n, "startup_s": t_one, "total_s": t_all,
                         "images_per_s_end_to_end": n / t_all, "images_per_s_after_startup": steady})
    return {"source": str(source), "command": f"python -m {module} ... --workers N", "rows": rows}
