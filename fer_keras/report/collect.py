"""Read run folders (and grid manifests) into one pandas table; result files only, no TensorFlow.

One row per run: its settings (from ``config.yaml``), parameter count (``run_info.json``),
every scalar metric of ``metrics.json`` (``val_*``, ``test_*``) and of its cross-domain
result (``cross_*``), and its grid status. Points a grid manifest lists but that have
no result yet get a row with blank metrics, so partial grids show their holes. Runs that
differ only in their seed share a group (:func:`merge_seeds`), as a cross-validated point's folds do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_keras.evaluate.bootstrap import correct_from_confusion
from fer_keras.evaluate.metrics import collapse_reasons
from fer_keras.evaluate.tta import TTA
from fer_keras.runs import Run, crossdomain_tag, find_runs, read_json, run_names

SETTINGS = ("model", "res", "dataset", "pretrain", "balance", "seed", "folds", "fold", "cv_group", "paper_faithful",
            "recipe", "epochs", "train_minutes", "lr", "model_options", "random_erasing", "batchnorm_recompute",
            "domain", "tta")
#: What the run's training cost: wall-clock minutes and epochs trained, from its learning curve.
COST = ("trained_minutes", "trained_epochs")
METRICS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
           "precision_weighted", "recall_weighted", "f1_weighted", "auc_ovr_weighted", "dedup_accuracy",
           "prior_accuracy")
SPLITS = ("val", "test", "cross")
#: Settings outside the run id that runs must share to count as seeds of one recipe (:func:`merge_seeds`).
RECIPE_SETTINGS = ("epochs", "train_minutes", "lr", "model_options", "random_erasing", "batchnorm_recompute",
                   "domain", "tta")


@dataclass
class RunRecord:
    """What the report knows about one finished run beyond its scalar metrics."""

    run_id: str
    run_dir: Path
    classes: list[str]
    results: dict[str, dict] = field(default_factory=dict)  # split -> metrics dict
    prediction_files: dict[str, Path] = field(default_factory=dict)  # split -> predictions csv
    cross_set: str | None = None  # the set the "cross" results are on: never shown unnamed

    _correct: dict[str, pd.Series | None] = field(default_factory=dict, repr=False)

    def correct(self, split: str) -> pd.Series | None:
        """Right/wrong per image, indexed by file when per-image predictions exist (read once)."""
        if split not in self._correct:
            self._correct[split] = self._read_correct(split)
        return self._correct[split]

    def _read_correct(self, split: str) -> pd.Series | None:
        path = self.prediction_files.get(split)
        if path is not None and path.is_file():
            p = pd.read_csv(path, usecols=["file", "y_true", "y_pred"])
            return pd.Series((p["y_true"] == p["y_pred"]).to_numpy(np.int8), index=p["file"])
        cm = self.results.get(split, {}).get("confusion_matrix")
        return pd.Series(correct_from_confusion(cm)) if cm else None

    def newest_result(self) -> float:
        """Modification time of the newest result file (figures older than this are redrawn)."""
        run = Run(self.run_dir)
        files = [run.metrics_file, *run.crossdomain_files().values()]
        return max(f.stat().st_mtime for f in files if f.is_file())


def group_of(run_id: str, fold: int | None) -> str:
    """Cross-validation folds share one group: the run id without its ``_f<fold>`` suffix."""
    return re.sub(rf"_f{fold}$", "", run_id) if fold is not None else run_id


def seedless(group: str, seed) -> str:
    """The group with its ``_s<seed>`` token as ``_s*``: the same recipe run with other seeds."""
    return re.sub(rf"_s{seed}(?=_|$)", "_s*", group) if seed is not None and not pd.isna(seed) else group


def merge_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that differ only in their seed become one group (``..._s*_...``), so the report shows their
    mean ± sd: a single seed's number cannot tell a recipe's gain from noise."""
    if df.empty:
        return df
    name = pd.Series([seedless(g, s) for g, s in zip(df["group"], df["seed"], strict=True)], index=df.index)
    # Seeds of one recipe also agree in the settings a run id does not carry (schedule, options, TTA, ...).
    recipe = pd.Series(["|".join(map(str, r)) for r in df[list(RECIPE_SETTINGS)].itertuples(index=False)],
                       index=df.index, dtype=str)
    key = name + "||" + recipe
    several = key.map(df.groupby(key)["seed"].nunique()) > 1
    # Two recipes merged under one seedless name stay two groups: the second and later get " (2)", " (3)", ...
    merged = key[several].drop_duplicates()
    rank = merged.groupby(name[merged.index]).cumcount()
    suffix = {k: f" ({r + 1})" if r else "" for k, r in zip(merged, rank, strict=True)}
    return df.assign(group=(name + key.map(suffix).fillna("")).where(several, df["group"]))


def domain_options(cfg: dict) -> str | None:
    """The options for another target domain a run set (input colour, equalisation, loss, checkpoint score),
    so runs that differ in them are neither one row nor seeds of one recipe; None when it set none."""
    parts = []
    if cfg.get("color", "rgb") != "rgb":
        parts.append(f"colour {cfg['color']}")
    if cfg.get("equalize"):
        parts.append("equalised")
    if cfg.get("loss", "crossentropy") != "crossentropy":
        parts.append(f"{cfg['loss']} loss (tau {cfg.get('loss_tau', 1.0):g})")
    if cfg.get("checkpoint_metric", "accuracy") != "accuracy":
        parts.append(f"checkpoint by {cfg['checkpoint_metric'].replace('_', ' ')}")
    return ", ".join(parts) or None


def _settings(cfg: dict) -> dict:
    row = {k: cfg.get(k) for k in SETTINGS}
    row["dataset"] = Path(str(row["dataset"] or "")).name
    row["recipe"] = row["recipe"] or "protocol"  # runs from before recipes were the protocol's
    row["random_erasing"] = row["random_erasing"] or None  # 0 and runs from before the option: off
    row["batchnorm_recompute"] = bool(row["batchnorm_recompute"])  # runs from before the option: off
    row["domain"] = domain_options(cfg)
    row["tta"] = TTA.of(cfg).name  # how its metrics were measured
    # What cross-validation folds keep whole: the cv_group pattern's groups, or single images.
    row["cv_group"] = row["cv_group"] or ("image" if row["folds"] else None)
    row["model_options"] = ", ".join(f"{k}={v}" for k, v in sorted((row["model_options"] or {}).items())) or None
    return row


def _cross_result(run: Run, cfg: dict) -> tuple[str | None, dict]:
    files = run.crossdomain_files()
    wanted = Path(str(cfg.get("crossdomain"))).name
    chosen = wanted if wanted in files else next(iter(files), None)
    if chosen is None:
        return None, {}
    return chosen, read_json(files[chosen])


def _collapsed(m: dict, classes: list[str]) -> bool | None:
    """The current collapse rules applied to the confusion matrix, so runs evaluated under older
    rules are judged like new ones; the stored flag where there is no matrix."""
    cm = m.get("confusion_matrix")
    if not cm:
        return m.get("collapsed")
    names = classes if len(classes) == len(cm) else [str(i) for i in range(len(cm))]
    return bool(collapse_reasons(cm, names))


def read_run(run_dir: Path, run_id: str | None = None) -> tuple[dict, RunRecord]:
    """One finished run as a table row plus its record, under ``run_id`` (default: its folder name)."""
    run_id = run_id or run_dir.name
    run = Run(run_dir)
    cfg = run.config_values()
    metrics = run.metrics()
    info = run.run_info()
    status = run.status()
    cross_set, cross = _cross_result(run, cfg)
    results = {"val": metrics.get("val") or {}, "test": metrics.get("test") or {}, "cross": cross}
    classes = run.classes() if run.classes_file.is_file() else []
    row = {"run_id": run_id, **_settings(cfg), "params": info.get("params"), "cross_set": cross_set,
           "status": "done" if status.get("state", "done") == "done" else status["state"],
           "run_dir": str(run_dir)}
    row["group"] = group_of(run_id, row["fold"])
    curve = run_curve(run_dir, run_id)
    if curve is not None and len(curve):
        row["trained_minutes"], row["trained_epochs"] = float(curve["minutes"].iloc[-1]), len(curve)
    for split, m in results.items():
        for metric in METRICS:
            row[f"{split}_{metric}"] = m.get(metric)
        # Accuracy on the images with no exact or near copy in training (fer_keras.evaluate.dedup).
        row[f"{split}_dedup_accuracy"] = (m.get("dedup") or {}).get("accuracy")
        row[f"{split}_dedup_n"] = (m.get("dedup") or {}).get("unique")  # the images it is measured on
        # After the run's class-prior correction (fer_keras.evaluate.prior; tau chosen on validation).
        row[f"{split}_prior_accuracy"] = (m.get("prior_corrected") or {}).get("accuracy")
        row[f"{split}_n"] = m.get("n")
        row[f"{split}_collapsed"] = _collapsed(m, classes)
    row["collapsed"] = any(bool(row[f"{split}_collapsed"]) for split in results)
    preds = {"val": run.predictions_file("val"), "test": run.predictions_file("test")}
    if cross_set:
        preds["cross"] = run.predictions_file(crossdomain_tag(cross_set))
    record = RunRecord(run_id, run_dir, classes, results, {k: v for k, v in preds.items() if v.is_file()},
                       cross_set=cross_set)
    return row, record


def _missing_points(root: Path, done: set[str]) -> list[dict]:
    rows = []
    for manifest in sorted(root.rglob("grid_*.json")):
        try:
            points = read_json(manifest).get("points", [])
        except ValueError:
            continue
        for point in points:
            if point["run_id"] in done:
                continue
            run_dir = manifest.parent / point["run_id"]
            status = Run(run_dir).status()
            rows.append({"run_id": point["run_id"], "group": point["group"], **_settings(point["config"]),
                         "status": status.get("state", "pending"), "run_dir": str(run_dir),
                         "collapsed": False})
            done.add(point["run_id"])
    return rows


def collect(root: Path) -> tuple[pd.DataFrame, dict[str, RunRecord]]:
    """Every run under ``root`` (finished ones and, from grid manifests, missing ones)."""
    rows, records, root = [], {}, Path(root)
    found = find_runs(root)
    # The same run id in two folders (runs/fast16/x and runs/fast36/x: other epochs, other lr) is two
    # experiments, not two folds of one: such runs are named by their path under ``root``.
    for run_dir, name in zip(found, run_names(found, root), strict=True):
        row, record = read_run(run_dir, name)
        rows.append(row)
        records[record.run_id] = record
    rows += _missing_points(Path(root), {r["run_id"] for r in rows})
    columns = ["run_id", "group", *SETTINGS, "params", *COST, "cross_set", "status", "collapsed", "run_dir",
               *(f"{s}_{m}" for s in SPLITS for m in (*METRICS, "n", "dedup_n", "collapsed"))]
    df = merge_seeds(pd.DataFrame(rows, columns=columns))
    return df.sort_values("run_id", ignore_index=True), records


#: The columns of :func:`run_curve` (and of :func:`learning_curves`, which stacks them).
CURVE_COLUMNS = ["run_id", "phase", "epoch", "minutes", "val_accuracy", "learning_rate"]


def run_curve(run_dir: Path, run_id: str | None = None) -> pd.DataFrame | None:
    """One run's per-epoch rows (:data:`CURVE_COLUMNS`) from its ``learning_curve.csv`` (training
    wall-clock per epoch, written since the fast recipe was added), in training order, under ``run_id``
    (default: the folder name); None when the run has no such file. An epoch trained twice around a
    restart counts with its last row. The one reader of that file: the report and the bench use it."""
    path = Run(run_dir).learning_curve_file
    if not path.is_file():
        return None
    frame = pd.read_csv(path).drop_duplicates(["phase", "epoch"], keep="last")
    curve = pd.DataFrame({
        "run_id": run_id or Path(run_dir).name, "phase": frame["phase"], "epoch": frame["epoch"],
        "minutes": frame["elapsed_s"] / 60, "val_accuracy": frame["val_accuracy"],
        "learning_rate": frame["learning_rate"]}, columns=CURVE_COLUMNS)
    return curve.sort_values("minutes", kind="stable", ignore_index=True)


def learning_curves(records: dict[str, RunRecord]) -> pd.DataFrame:
    """:func:`run_curve` of every run that has a ``learning_curve.csv``, stacked, sorted by run and minutes."""
    frames = [c for rec in records.values() if (c := run_curve(rec.run_dir, rec.run_id)) is not None]
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values(["run_id", "minutes"], ignore_index=True)
