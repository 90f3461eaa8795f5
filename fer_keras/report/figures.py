"""The report's figures (matplotlib, PNG): the paper's comparisons, confusion matrices, per-class accuracy.

Each comparison plots, per model, the mean validation and cross-domain accuracy for
every level of one factor (resolution, initialisation, class balancing, dataset),
averaged over the other factors. A figure whose factor has a single level in the
results is not drawn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer_keras.report.collect import RunRecord  # noqa: E402

SPLIT_LABELS = {"val_accuracy": "validation accuracy", "cross_accuracy": "cross-domain accuracy"}
COMPARISONS = {  # file stem -> (factor, title)
    "res_48_vs_224": ("res", "input resolution"),
    "pretrain": ("pretrain", "initialisation (ImageNet, VGGFace, scratch)"),
    "balance": ("balance", "class balancing"),
    "dataset": ("dataset", "training dataset"),
    "scratch_vs_pretrained": ("init_kind", "from scratch vs pre-trained"),
}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _sets(values: pd.Series) -> str:
    """Every cross-domain set named in ``values`` (entries may list several, comma-separated)."""
    names = sorted({name for v in values.dropna() for name in str(v).split(", ")})
    return ", ".join(names) or "no set"


def comparison(summary: pd.DataFrame, factor: str, title: str, path: Path) -> Path | None:
    """Grouped bars: per model, mean accuracy for each level of ``factor``."""
    data = summary.assign(init_kind=np.where(summary["pretrain"] == "scratch", "scratch", "pre-trained"))
    metrics = [m for m in SPLIT_LABELS if data[m].notna().any()]
    if not metrics or data.loc[data[metrics[0]].notna(), factor].nunique() < 2:
        return None
    n_models = data["model"].nunique()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6.0, 0.6 * n_models + 3), 3.2 * len(metrics)),
                             squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        pivot = data.pivot_table(index="model", columns=factor, values=metric, aggfunc="mean")
        pivot.plot.bar(ax=ax, rot=45, width=0.8)
        cross = f"\n(on {_sets(data.loc[data[metric].notna(), 'cross_set'])})" if metric == "cross_accuracy" else ""
        ax.set_ylabel(SPLIT_LABELS[metric] + cross)
        ax.set_ylim(0, 1)
        ax.set_xlabel("")
        ax.legend(title=factor, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title(f"Accuracy by {title}")
    return _save(fig, path)


def per_class_crossdomain(summary: pd.DataFrame, records: dict[str, RunRecord], path: Path) -> Path | None:
    """Heatmap: per-class cross-domain accuracy of every grid point (mean over folds)."""
    rows = {}
    for _, row in summary.iterrows():
        per_class = [records[r].results.get("cross", {}).get("per_class_accuracy") for r in row["run_ids"]
                     if r in records]
        per_class = [p for p in per_class if p]
        if per_class:
            rows[f"{row['group']} ({row['cross_set']})"] = pd.DataFrame(per_class).astype(float).mean()
    if not rows:
        return None
    table = pd.DataFrame(rows).T
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * table.shape[1], 1.2 + 0.35 * table.shape[0]))
    im = ax.imshow(table.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    for i, j in np.ndindex(table.shape):
        if not np.isnan(table.iat[i, j]):
            ax.text(j, i, f"{table.iat[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if table.iat[i, j] < 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(f"Per-class cross-domain accuracy on {_sets(summary['cross_set'])}")
    return _save(fig, path)


def confusion(record: RunRecord, path: Path) -> Path | None:
    """Row-normalised confusion matrices of one run: validation, test and cross-domain side by side.

    Kept when already drawn from the run's current results: a report over hundreds of runs
    redraws only the runs that changed.
    """
    if path.is_file() and path.stat().st_mtime >= record.newest_result():
        return path
    panels = [(split, record.results[split]["confusion_matrix"]) for split in ("val", "test", "cross")
              if record.results.get(split, {}).get("confusion_matrix")]
    if not panels:
        return None
    k = len(record.classes) or len(panels[0][1])
    names = record.classes or [str(i) for i in range(k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(0.75 * k * len(panels) + 1, 0.75 * k + 1.2), squeeze=False)
    for ax, (split, cm) in zip(axes[0], panels, strict=True):
        cm = np.asarray(cm, dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        for i, j in np.ndindex(norm.shape):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black")
        name = f"cross: {record.cross_set}" if split == "cross" else split
        ax.set_title(f"{name} (n={int(cm.sum())})", fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
    axes[0, 0].set_ylabel("true", fontsize=7)
    fig.suptitle(record.run_id, fontsize=8)
    return _save(fig, path)


def learning_curve(curves: pd.DataFrame, path: Path) -> Path | None:
    """Validation accuracy against training wall-clock minutes, one line per run (the fast recipe's
    question: how good a model does an hour of this machine buy)."""
    if curves.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for run_id, c in curves.groupby("run_id", sort=True):
        ax.plot(c["minutes"], c["val_accuracy"], marker=".", label=run_id)
    ax.set_xlabel("training wall-clock (minutes)")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    ax.set_title("Learning curves")
    return _save(fig, path)


def all_figures(summary: pd.DataFrame, records: dict[str, RunRecord], out: Path,
                curves: pd.DataFrame | None = None) -> list[Path]:
    """Every figure the results allow, under ``out/figures``."""
    curves = curves if curves is not None else pd.DataFrame()
    written = [learning_curve(curves, out / "figures" / "learning_curves.png")]
    written += [comparison(summary, factor, title, out / "figures" / f"{stem}.png")
               for stem, (factor, title) in COMPARISONS.items()]
    written.append(per_class_crossdomain(summary, records, out / "figures" / "per_class_crossdomain.png"))
    written += [confusion(rec, out / "figures" / "confusion" / f"{rec.run_id}.png") for rec in records.values()]
    return [p for p in written if p is not None]
