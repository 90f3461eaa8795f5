"""The learning-curve section: validation accuracy against training wall-clock minutes of finished runs.

Nothing is measured here: each run folder's ``learning_curve.csv`` (read by the report's
:func:`~fer_keras.report.collect.run_curve`, the one reader of that file), ``config.yaml`` and
``metrics.json`` are put beside the speed numbers, so "how good a model does an hour of this
machine buy" sits in the same results as "how many images per second". No TensorFlow.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fer_keras.report.collect import CURVE_COLUMNS, run_curve
from fer_keras.runs import Run, run_names

#: The test metrics quoted per run (``metrics.json`` ``test``), as ``test_<name>``.
TEST_METRICS = ("accuracy", "balanced_accuracy", "f1_macro")


def curve_problem(run_dir: Path) -> str | None:
    """Why ``run_dir`` has no learning curve to show, or None when it has one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return f"{run_dir} is not a folder (give run folders, e.g. runs/fast16/<run-id>)"
    curve = run_curve(run_dir)
    if curve is None or curve.empty:
        what = "has no" if curve is None else "has an empty"
        return (f"{run_dir} {what} {Run(run_dir).learning_curve_file.name}: the run predates learning curves "
                "or never trained an epoch")
    return None


def _number(x) -> float | None:
    """A JSON number: NaN (a missing value in the CSV) as None."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def run_summary(run_dir: Path, label: str | None = None) -> dict:
    """One run's curve and results: settings, per-epoch points, minutes to the best validation epoch,
    total training minutes and the test metrics (None where ``metrics.json`` has none). ``epochs`` is the
    schedule's length (``config.yaml``), ``epochs_trained`` the last epoch its last phase finished (less
    for a run stopped early or still training)."""
    run_dir = Path(run_dir)
    curve = run_curve(run_dir, label) if run_dir.is_dir() else None
    if curve is None or curve.empty:
        raise ValueError(curve_problem(run_dir))
    run = Run(run_dir)
    cfg = run.config_values()
    metrics = run.metrics() if run.metrics_file.is_file() else {}
    test = metrics.get("test") or {}
    points = [{"phase": str(r.phase), "epoch": int(r.epoch), "minutes": float(r.minutes),
               "val_accuracy": _number(r.val_accuracy), "learning_rate": _number(r.learning_rate)}
              for r in curve.itertuples(index=False)]
    scored = curve["val_accuracy"].dropna()
    best = points[int(scored.idxmax())] if not scored.empty else {}  # the first epoch reaching the best
    return {
        "run": label or run_dir.name, "run_dir": str(run_dir), "model": cfg.get("model"),
        "recipe": metrics.get("recipe") or cfg.get("recipe") or "protocol",  # runs before recipes: the protocol's
        "epochs": cfg.get("epochs"), "epochs_trained": points[-1]["epoch"],
        "model_options": cfg.get("model_options") or {},
        "points": points, "total_minutes": points[-1]["minutes"],
        "best_val_accuracy": best.get("val_accuracy"), "best_phase": best.get("phase"),
        "best_epoch": best.get("epoch"), "minutes_to_best": best.get("minutes"),
        **{f"test_{name}": _number(test.get(name)) for name in TEST_METRICS},
    }


def learning_curve_section(run_dirs: list[Path]) -> list[dict]:
    """:func:`run_summary` of every run folder, in the order given."""
    return [run_summary(d, label) for d, label in zip(run_dirs, run_names(run_dirs), strict=True)]


def curves_frame(rows: list[dict]) -> pd.DataFrame:
    """The section's points as the report's curve table (:data:`CURVE_COLUMNS`), for its figure."""
    return pd.DataFrame([{"run_id": r["run"], **p} for r in rows for p in r["points"]], columns=CURVE_COLUMNS)


def at_fractions(points: list[dict], steps: int = 10) -> list[dict]:
    """The points a short table shows: at each tenth (``steps``) of the run's minutes, the last epoch
    finished by then, each epoch once (a run of few epochs has fewer rows), with ``share`` of the run."""
    total = points[-1]["minutes"]
    chosen: list[dict] = []
    for i in range(1, steps + 1):
        done = [p for p in points if p["minutes"] <= total * i / steps + 1e-9]
        if done and (not chosen or done[-1] is not chosen[-1]["point"]):
            chosen.append({"share": i / steps, "point": done[-1]})
    return [{"share": c["share"], **c["point"]} for c in chosen]
