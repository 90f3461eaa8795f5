"""``python -m fer_keras.predict.builtin RUN``: make a finished run the built-in model of ``fer-predict``.

A run's ``best.keras`` carries its optimizer (AdamW moments, EMA copies: three times the
weights) and, for fast-recipe runs, a bfloat16 compute policy that is slow or missing on
many CPUs. The shipped copy is the same architecture rebuilt in float32 with the run's
weights and no optimizer, beside the run's class order and provenance files
(config, run info, metrics), and its int8 TFLite file when the run was exported.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from fer_keras.predict.predictor import BUILTIN_MODEL_DIR
from fer_keras.runs import Run

PROVENANCE = ("classes_file", "config_file", "run_info_file", "metrics_file")
TFLITE = "model_int8.tflite"


def ship(run_dir: Path, dest: Path = BUILTIN_MODEL_DIR) -> Path:
    """Write ``run_dir``'s best model (float32, no optimizer) and its provenance files into ``dest``."""
    run = Run(run_dir)
    if not run.is_finished():
        raise ValueError(f"{run_dir} is not a finished run (no {run.metrics_file.name})")
    trained = run.model()
    model, res = run.float32_model(trained), run.config().res
    x = np.random.default_rng(0).uniform(0, 255, (4, res, res, 3)).astype("float32")
    # bfloat16 keeps 8 bits of mantissa: the float32 copy may differ by a few hundredths, not more.
    gap = float(np.abs(np.asarray(model(x)) - np.asarray(trained(x), dtype="float32")).max())
    if gap > 0.1:
        raise RuntimeError(f"the float32 copy of {run_dir} disagrees with it by {gap:.3f} in probability")
    dest.mkdir(parents=True, exist_ok=True)
    shipped = Run(dest)
    model.save(shipped.model_file)
    for name in PROVENANCE:
        shutil.copyfile(getattr(run, name), getattr(shipped, name))
    if (run.dir / TFLITE).is_file():
        shutil.copyfile(run.dir / TFLITE, dest / TFLITE)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_keras.predict.builtin", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a finished run folder")
    p.add_argument("--dest", type=Path, default=BUILTIN_MODEL_DIR, help=f"where to write it ({BUILTIN_MODEL_DIR})")
    args = p.parse_args(argv)
    try:
        print(f"built-in model written to {ship(args.run, args.dest)}")
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
