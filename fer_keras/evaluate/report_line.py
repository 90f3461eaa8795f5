"""Short console summaries of runs (the full report is fer_keras.report)."""

from __future__ import annotations

from pathlib import Path

from fer_keras.runs import Run

COLUMNS = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "auc_ovr_weighted")


def print_run_summary(run_dir: Path) -> None:
    metrics = Run(run_dir).metrics()
    print(f"\nrun {run_dir}")
    print(f"{'split':<8}" + "".join(f"{c:>19}" for c in COLUMNS))
    for split in ("val", "test"):
        if split in metrics:
            m = metrics[split]
            print(f"{split:<8}" + "".join(f"{_fmt(m.get(c)):>19}" for c in COLUMNS))


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"
