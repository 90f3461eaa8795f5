"""The report's figures: the paper's comparisons, confusion matrices, per-class accuracy.

Every figure is written twice, for a paper: a PNG at 300 dpi and a vector PDF beside it.
Each comparison plots, per model, the mean validation and cross-domain accuracy for
every level of one factor (resolution, initialisation, class balancing, dataset),
averaged over the other factors, with the report's 95 % intervals as error bars: a
bar of one grid point shows its interval; a bar averaging several points shows the
mean of their bounds, which is never narrower than the interval of the mean (the
standard error of a mean is at most the mean of the standard errors). A figure whose
factor has a single level in the results is not drawn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer_keras.report.collect import RunRecord  # noqa: E402

DPI = 300
#: Cell text in the heatmaps: legible at the figures' printed size.
CELL_FONT = 8
SPLIT_LABELS = {"val_accuracy": "validation accuracy", "cross_accuracy": "cross-domain accuracy"}
COMPARISONS = {  # file stem -> (factor, title)
    "res_48_vs_224": ("res", "input resolution"),
    "pretrain": ("pretrain", "initialisation (ImageNet, VGGFace, scratch)"),
    "balance": ("balance", "class balancing"),
    "dataset": ("dataset", "training dataset"),
    "scratch_vs_pretrained": ("init_kind", "training from scratch vs pre-trained"),
}
LEGEND_TITLES = {"res": "input px", "pretrain": "initialisation", "balance": "class weights",
                 "dataset": "trained on", "init_kind": "initialisation"}


def _save(fig, path: Path) -> Path:
    """``path`` (PNG, 300 dpi) and the same figure as PDF beside it; returns the PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.savefig(path.with_suffix(".pdf"))
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
        _bars(ax, data, factor, metric)
        cross = f"\n(on {_sets(data.loc[data[metric].notna(), 'cross_set'])})" if metric == "cross_accuracy" else ""
        ax.set_ylabel(SPLIT_LABELS[metric] + cross)
        ax.set_ylim(0, 1)
        ax.set_xlabel("")
        ax.legend(title=LEGEND_TITLES.get(factor, factor), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title(f"Accuracy by {title}")
    return _save(fig, path)


def _bars(ax, data: pd.DataFrame, factor: str, metric: str) -> None:
    """Grouped bars (one group per model, one bar per level of ``factor``) with interval error bars."""
    mean, lo, hi = (data.pivot_table(index="model", columns=factor, values=col, aggfunc="mean")
                    for col in (metric, f"{metric}_lo", f"{metric}_hi"))
    lo, hi = lo.reindex_like(mean), hi.reindex_like(mean)
    width = 0.8 / len(mean.columns)
    x = np.arange(len(mean.index))
    for j, level in enumerate(mean.columns):
        y = mean[level].to_numpy(dtype=float)
        err = np.vstack([y - lo[level].to_numpy(dtype=float), hi[level].to_numpy(dtype=float) - y])
        ax.bar(x - 0.4 + width * (j + 0.5), y, width, label=str(level),
               # a cell averaging several groups can hold a mean outside the mean interval: never < 0
               yerr=np.clip(np.nan_to_num(err), 0, None), capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, mean.index, rotation=45, ha="right")


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
    # Room for the row labels (about 0.07 in per character at 8 pt), then 0.55 in per cell.
    label_width = 0.07 * max(len(str(name)) for name in table.index)
    fig, ax = plt.subplots(figsize=(1.5 + label_width + 0.55 * table.shape[1], 1.6 + 0.3 * table.shape[0]))
    im = ax.imshow(table.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=CELL_FONT)
    for i, j in np.ndindex(table.shape):
        if not np.isnan(table.iat[i, j]):
            ax.text(j, i, f"{table.iat[i, j]:.2f}", ha="center", va="center", fontsize=CELL_FONT,
                    color="white" if table.iat[i, j] < 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(f"Per-class cross-domain accuracy on {_sets(summary['cross_set'])}")
    return _save(fig, path)


def confusion(record: RunRecord, path: Path) -> Path | None:
    """Row-normalised confusion matrices of one run: validation, test and cross-domain side by side.

    Kept when already drawn from the run's current results: a report over hundreds of runs
    redraws only the runs that changed.
    """
    pdf = path.with_suffix(".pdf")
    if path.is_file() and pdf.is_file() and min(path.stat().st_mtime, pdf.stat().st_mtime) >= record.newest_result():
        return path
    panels = [(split, record.results[split]["confusion_matrix"]) for split in ("val", "test", "cross")
              if record.results.get(split, {}).get("confusion_matrix")]
    if not panels:
        return None
    k = len(record.classes) or len(panels[0][1])
    names = record.classes or [str(i) for i in range(k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(0.5 * k * len(panels) + 1.2, 0.5 * k + 1.4), squeeze=False)
    for ax, (split, cm) in zip(axes[0], panels, strict=True):
        cm = np.asarray(cm, dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=CELL_FONT)
        ax.set_yticks(range(k), names, fontsize=CELL_FONT)
        for i, j in np.ndindex(norm.shape):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=CELL_FONT,
                    color="white" if norm[i, j] > 0.5 else "black")
        name = f"cross: {record.cross_set}" if split == "cross" else split
        ax.set_title(f"{name} (n={int(cm.sum())})", fontsize=CELL_FONT + 1)
        ax.set_xlabel("predicted", fontsize=CELL_FONT)
    axes[0, 0].set_ylabel("true", fontsize=CELL_FONT)
    fig.suptitle(record.run_id, fontsize=CELL_FONT + 1)
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
    """Every figure the results allow, under ``out/figures`` (the PNGs; each has its PDF beside it)."""
    curves = curves if curves is not None else pd.DataFrame()
    written = [learning_curve(curves, out / "figures" / "learning_curves.png")]
    written += [comparison(summary, factor, title, out / "figures" / f"{stem}.png")
               for stem, (factor, title) in COMPARISONS.items()]
    written.append(per_class_crossdomain(summary, records, out / "figures" / "per_class_crossdomain.png"))
    written += [confusion(rec, out / "figures" / "confusion" / f"{rec.run_id}.png") for rec in records.values()]
    return [p for p in written if p is not None]
