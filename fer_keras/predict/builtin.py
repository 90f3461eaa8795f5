"""``python -m fer_keras.predict.builtin RUN``: make a finished run the built-in model of ``fer-predict``.

A run's ``best.keras`` carries its optimizer (AdamW moments, EMA copies: three times the
weights) and, for fast-recipe runs, a bfloat16 compute policy that is slow or missing on
many CPUs. The shipped copy is the same architecture rebuilt in float32 with the run's
weights and no optimizer, beside the run's class order and provenance files
(config, run info, metrics), and its int8 TFLite file when the run was exported. The files
written are then evaluated as they are, on the run's splits with today's decoding, and the
card (``card.json``, ``card.md``: ``fer_keras.predict.card``) is written from that evaluation,
never copied from the run's older metrics.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from fer_keras.data.readers import DatasetError
from fer_keras.evaluate import prior as prior_correction
from fer_keras.predict.card import CARD_MD, TFLITE, measure, write_card
from fer_keras.predict.predictor import BUILTIN_MODEL_DIR
from fer_keras.runs import Run

PROVENANCE = ("classes_file", "config_file", "run_info_file", "metrics_file")


def ship(run_dir: Path, dest: Path = BUILTIN_MODEL_DIR, *, data_root: Path | None = None,
         cross: Path | None = None) -> Path:
    """Write ``run_dir``'s best model (float32, no optimizer) and its provenance files into ``dest``, then its
    card from an evaluation of the written files (``data_root``: where the run's dataset is now; ``cross``: a
    cross-domain set the card also scores). The run's prior correction ships with it when it has one."""
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
    # Written and measured beside ``dest`` first: a failed measurement leaves the old model and card as they were.
    dest = Path(dest)
    staging = dest.with_name(f".{dest.name}.shipping")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shipped = Run(staging)
        model.save(shipped.model_file)
        for name in PROVENANCE:
            shutil.copyfile(getattr(run, name), getattr(shipped, name))
        for extra in (TFLITE, prior_correction.FILE_NAME):
            if (run.dir / extra).is_file():
                shutil.copyfile(run.dir / extra, staging / extra)
        write_card(staging, measure(staging, run_dir, data_root=data_root, cross=cross))
        dest.mkdir(parents=True, exist_ok=True)
        for extra in (TFLITE, prior_correction.FILE_NAME):  # an earlier model's must not stay beside this one
            (dest / extra).unlink(missing_ok=True)
        for f in staging.iterdir():
            f.replace(dest / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_keras.predict.builtin", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a finished run folder")
    p.add_argument("--dest", type=Path, default=BUILTIN_MODEL_DIR, help=f"where to write it ({BUILTIN_MODEL_DIR})")
    p.add_argument("--data-root", type=Path, help="where the run's dataset is now, if it moved (the card is "
                   "measured on its splits)")
    p.add_argument("--cross", type=Path, help="a cross-domain set (class folders) the card also scores, e.g. "
                   "BTFER-48 dev")
    args = p.parse_args(argv)
    try:
        dest = ship(args.run, args.dest, data_root=args.data_root, cross=args.cross)
        print(f"built-in model written to {dest}; its card, measured on the written files:\n")
        print((dest / CARD_MD).read_text())
    except (ValueError, FileNotFoundError, RuntimeError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
