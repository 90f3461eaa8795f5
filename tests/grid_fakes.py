"""Fake training and fake run folders for the grid and report tests (no TensorFlow needed).

``fake_train`` stands in for train_run where a test is about orchestration: it writes
the files that mark a run finished and logs which process trained which run.
``write_run`` writes a finished run folder with chosen accuracies, as the report reads it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import yaml

from fer_keras.evaluate.metrics import classification_metrics
from fer_keras.labels import CANONICAL_CLASSES
from fer_keras.runs import write_json

CLASSES = list(CANONICAL_CLASSES)


def fake_train(cfg) -> Path:
    """Log ``<pid> <run id>`` to $FAKE_TRAIN_LOG, fail for ids in $FAKE_TRAIN_FAIL, then finish the run."""
    run_id = cfg.resolved_run_id()
    log = os.environ.get("FAKE_TRAIN_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {run_id}\n")
    if run_id in os.environ.get("FAKE_TRAIN_FAIL", "").split(","):
        raise RuntimeError(f"simulated failure of {run_id}")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
    return write_run(cfg.run_dir(), cfg.model_dump(mode="json"), val=0.5)


def _predictions(acc: float, n: int, k: int, collapsed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.arange(n) % k
    right = int(round(acc * n))
    if collapsed:  # all wrong answers go to class 0
        y_pred = np.where(np.arange(n) < right, y_true, 0)
        y_pred[(np.arange(n) >= right) & (y_true == 0)] = 1
    else:
        y_pred = np.where(np.arange(n) < right, y_true, (y_true + 1) % k)
    return y_true, y_pred


def _split(run_dir: Path, tag: str, acc: float, n: int, prefix: str, collapsed: bool = False) -> dict:
    y_true, y_pred = _predictions(acc, n, len(CLASSES), collapsed)
    probs = np.eye(len(CLASSES))[y_pred]
    m = classification_metrics(y_true, probs, CLASSES)
    lines = ["file,y_true,y_pred," + ",".join(f"p_{c}" for c in CLASSES)]
    lines += [f"{prefix}/img_{i}.png,{t},{p}," + ",".join(f"{v:.1f}" for v in probs[i])
              for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True))]
    (run_dir / f"predictions_{tag}.csv").write_text("\n".join(lines) + "\n")
    return m


def write_run(run_dir: Path, config: dict, *, val: float, cross: float | None = None, test: float | None = None,
              params: int = 1_000_000, n: int = 140, collapsed: bool = False, cross_set: str = "wild") -> Path:
    """A finished run folder whose splits have exactly these accuracies (n images each)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    write_json(run_dir / "classes.json", CLASSES)
    write_json(run_dir / "run_info.json", {"params": params})
    metrics = {"val": _split(run_dir, "val", val, n, "val", collapsed)}
    if test is not None:
        metrics["test"] = _split(run_dir, "test", test, n, f"test{config.get('fold')}")
    if cross is not None:
        write_json(run_dir / f"crossdomain_{cross_set}.json",
                   _split(run_dir, f"crossdomain_{cross_set}", cross, n, cross_set))
    (run_dir / "best.keras").write_bytes(b"fake")
    write_json(run_dir / "metrics.json", metrics)
    return run_dir
