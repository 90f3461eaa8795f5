"""The paper's result tables (Tables 2-5) from collected runs, with intervals and significance marks.

A *group* is one grid point: a single run, or the k folds of a cross-validated point
(metrics are then mean and standard deviation over the folds). Every accuracy gets a
95% bootstrap interval over images. A cross-validated point's folds are matched by image
file: each distinct image counts once, with its right/wrong averaged over the folds that
saw it. The folds' test sets are disjoint, so that pools them; but every fold meets the
same cross-domain images (and overlapping validation sets), and pooling those k times
would pretend k times as many images and shrink the interval by about sqrt(k). Without
per-image predictions files the interval is the Student-t interval of the fold means.

In each dataset x resolution table the best row per split (the bold one) is compared
with every other row by McNemar's exact test on the same images; the p-values of that
family are Holm-adjusted, and ``≈`` marks a difference from the best that is not
significant at the 5% level after adjustment. A row is testable when every image it
was evaluated on was seen once (a single run, or disjoint folds); when the best row is
not, the split has no marks. Missing results stay blank.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable

import numpy as np
import pandas as pd

from fer_keras.evaluate.bootstrap import bootstrap_ci, fold_interval, holm, mcnemar_p
from fer_keras.report.collect import COST, METRICS, SPLITS, RunRecord
from fer_keras.report.paper import PAPER_COLUMNS

KEYS = ["model", "res", "dataset", "pretrain", "balance", "seed", "cv_group", "paper_faithful", "recipe", "epochs",
        "train_minutes",
        "lr", "model_options", "random_erasing", "batchnorm_recompute", "domain", "tta"]
SCALARS = [f"{s}_{m}" for s in SPLITS for m in METRICS]
SMALL_PARAMS = 5_000_000
ALPHA = 0.05
#: Marks a row never tested against the best one (no per-image predictions, or other images: a split carved
#: with another seed, another data root, repeated images), so it is not read as significantly different.
UNTESTED = "†"
#: Displayed columns: (header, column); precision/recall/F1 are on the validation split, as in the paper.
DISPLAY = [("model", "model"), ("init", "pretrain"), ("balance", "balance"), ("res", "res"),
           ("dataset", "dataset"), ("epochs", "epochs"), ("time budget (min)", "train_minutes"), ("lr", "lr"),
           ("options", "model_options"),
           ("erasing", "random_erasing"), ("BN recomputed", "batchnorm_recompute"), ("domain options", "domain"),
           ("TTA", "tta"), ("CV folds by", "cv_group"),
           ("val acc", "val_accuracy"), ("cross set", "cross_set"),
           ("cross acc", "cross_accuracy"), ("cross acc dedup", "cross_dedup_accuracy"),
           ("cross acc prior-corrected", "cross_prior_accuracy"),
           ("test acc", "test_accuracy"), ("test acc dedup", "test_dedup_accuracy"),
           ("test acc prior-corrected", "test_prior_accuracy"),
           ("test balanced acc", "test_balanced_accuracy"),
           ("test F1 macro", "test_f1_macro"), ("paper test acc", "paper_test_accuracy"),
           ("test − paper", "test_accuracy_vs_paper"), ("dedup − paper", "test_dedup_accuracy_vs_paper"),
           ("paper cross acc", "paper_cross_accuracy"),
           ("cross − paper", "cross_accuracy_vs_paper"), ("precision macro", "val_precision_macro"),
           ("precision weighted", "val_precision_weighted"), ("recall macro", "val_recall_macro"),
           ("recall weighted", "val_recall_weighted"), ("F1 macro", "val_f1_macro"),
           ("F1 weighted", "val_f1_weighted"), ("balanced acc", "val_balanced_accuracy"),
           ("params (M)", "params"), ("train min", "trained_minutes"), ("epochs run", "trained_epochs"),
           ("runs", "runs"), ("notes", "notes")]
#: Settings shown only where rows of one table differ in them (runs of one model at two schedule lengths,
#: with and without random erasing or recomputed BatchNorm statistics, evaluated with other test-time augmentation).
SHOWN_WHEN_THEY_DIFFER = ("epochs", "time budget (min)", "lr", "options", "erasing", "BN recomputed", "domain options",
                          "TTA")
#: Shown only in tables with cross-validated rows, whose test folds are the result (El Cheikh et al.'s metrics).
CV_ONLY = ("test balanced acc", "test F1 macro")
#: Shown only in tables with a grouped (cv_group) row: "image" (ungrouped folds) or the pattern.
GROUPED_ONLY = "CV folds by"


def _parts(records: dict[str, RunRecord], run_ids: list[str], split: str) -> list[pd.Series]:
    parts = [records[r].correct(split) for r in run_ids if r in records]
    return [p for p in parts if p is not None]


def _has_files(part: pd.Series) -> bool:
    return not isinstance(part.index, pd.RangeIndex) and part.index.is_unique


def _interval(parts: list[pd.Series], fold_values: pd.Series, seed: int) -> tuple[float, float]:
    """95% interval of a group's accuracy: bootstrap over distinct images (see the module doc)."""
    if not parts:
        return (np.nan, np.nan)
    if len(parts) == 1:
        return bootstrap_ci(parts[0].to_numpy(), seed=seed)
    if all(_has_files(p) for p in parts):
        per_image = pd.concat(parts).groupby(level=0, sort=False).mean()
        return bootstrap_ci(per_image.to_numpy(), seed=seed)
    return fold_interval(fold_values.to_numpy())


def cross_sets(runs: pd.DataFrame) -> str | None:
    """The cross-domain set(s) of these runs' results, named wherever a cross-domain number is shown."""
    return ", ".join(sorted(set(runs["cross_set"].dropna()))) or None


def summarize(runs: pd.DataFrame, records: dict[str, RunRecord], *, seed: int = 0) -> pd.DataFrame:
    """One row per group: settings, params, mean (and std over folds) of every metric, 95% CIs."""
    rows = []
    for group, g in runs.groupby("group", sort=True):
        done = g[g["val_accuracy"].notna()]
        first = g.iloc[0]
        row = {"group": group, **{k: first[k] for k in KEYS}, "folds": first["folds"], "seed": _seeds(g),
               "params": done["params"].dropna().iloc[0] if done["params"].notna().any() else np.nan,
               "runs": f"{len(done)}/{len(g)}" if len(g) > 1 or len(done) == 0 else "1",
               "status": "done" if len(done) == len(g) else ",".join(sorted(set(g["status"]) - {"done"}) or ["?"]),
               "collapsed": bool(done["collapsed"].any()), "run_ids": list(done["run_id"]),
               "cross_set": cross_sets(done)}
        for col in COST:  # the mean over folds and seeds
            row[col] = pd.to_numeric(done[col], errors="coerce").mean()  # NaN when no run has a curve
        for col in SCALARS:
            values = pd.to_numeric(done[col], errors="coerce")
            row[col] = values.mean() if values.notna().any() else np.nan
            row[f"{col}_std"] = values.std(ddof=1) if values.notna().sum() > 1 else np.nan
        for split in SPLITS:
            sizes = pd.to_numeric(done[f"{split}_dedup_n"], errors="coerce").dropna()
            row[f"{split}_dedup_n"] = sizes.iloc[0] if len(sizes) and sizes.nunique() == 1 else np.nan
            folds = pd.to_numeric(done[f"{split}_accuracy"], errors="coerce")
            lo, hi = _interval(_parts(records, row["run_ids"], split), folds, seed)
            row[f"{split}_accuracy_lo"], row[f"{split}_accuracy_hi"] = lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def _seeds(g: pd.DataFrame):
    """The group's seed, or its seeds ('42, 43') when it holds runs of several (collect.merge_seeds)."""
    seeds = sorted(set(g["seed"].dropna().astype(int)))
    return seeds[0] if len(seeds) == 1 else ", ".join(map(str, seeds)) if seeds else g["seed"].iloc[0]


def _paired_frame(correct: dict[int, list[pd.Series]]) -> pd.DataFrame:
    """Right/wrong per image, one column per table row, aligned on the image file (NaN: not seen).

    Rows whose results come from a confusion matrix only (no predictions file), or whose runs
    saw an image more than once (folds on the same cross-domain set), cannot be paired.
    """
    pooled = {i: pd.concat(parts) for i, parts in correct.items() if parts}
    usable = {i: c for i, c in pooled.items() if _has_files(c)}
    return pd.concat(usable, axis=1) if usable else pd.DataFrame()


def best_row(table: pd.DataFrame, col: str) -> Hashable | None:
    """Index of the row with the highest ``col`` (the first of ties in table order): bold in the
    table and the reference of its significance tests, so both always name the same row."""
    return table[col].idxmax() if col in table and table[col].notna().any() else None


SIGNIFICANCE_COLUMNS = ["split", "a", "b", "acc_a", "acc_b", "n", "p", "vs_best", "p_holm", "significant"]


def significance(table: pd.DataFrame, records: dict[str, RunRecord]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Adds ``<split>_p_vs_best`` (raw) and ``<split>_p_vs_best_holm`` to ``table``; returns it and
    every pairwise p-value (long format; in best-vs-each rows ``a`` is the best, ``p_holm`` set).

    Two rows are compared on the images both were evaluated on, if that is at least 90% of each
    one's images (the same split of the same dataset); otherwise the pair is left out.
    ``significant`` uses ``p_holm`` where there is one, the raw ``p`` for the other pairs.
    """
    table = table.copy()
    pairs = []
    for split in SPLITS:
        col = f"{split}_accuracy"
        table[f"{split}_p_vs_best"] = table[f"{split}_p_vs_best_holm"] = np.nan
        rows = table[table[col].notna()]
        frame = _paired_frame({i: _parts(records, r, split) for i, r in rows["run_ids"].items()})
        if frame.shape[1] < 2:
            continue
        seen = frame.notna().to_numpy()
        values = frame.fillna(0).to_numpy(dtype=bool)
        sizes = seen.sum(axis=0)
        best = best_row(table, col)
        columns = list(frame.columns)
        split_pairs = []
        for a, b in itertools.combinations(range(len(columns)), 2):
            both = seen[:, a] & seen[:, b]
            if both.sum() < 0.9 * max(sizes[a], sizes[b]):
                continue
            i, j = columns[a], columns[b]
            if j == best:
                (a, i), (b, j) = (b, j), (a, i)
            split_pairs.append({"split": split, "a": table.at[i, "group"], "b": table.at[j, "group"],
                                "acc_a": table.at[i, col], "acc_b": table.at[j, col], "n": int(both.sum()),
                                "p": mcnemar_p(values[both, a], values[both, b]), "vs_best": i == best,
                                "other": j})
        family = [q for q in split_pairs if q["vs_best"]]
        for q, adjusted in zip(family, holm([q["p"] for q in family]), strict=True):
            q["p_holm"] = adjusted
            table.at[q["other"], f"{split}_p_vs_best"] = q["p"]
            table.at[q["other"], f"{split}_p_vs_best_holm"] = adjusted
        for q in split_pairs:
            q["significant"] = q.get("p_holm", q["p"]) < ALPHA
        pairs += split_pairs
    return table, pd.DataFrame(pairs, columns=SIGNIFICANCE_COLUMNS)


def _cell(row: pd.Series, col: str, best: bool) -> str:
    value = row.get(col)
    if col == "params":
        return "" if pd.isna(value) else f"{value / 1e6:.2f}"
    if col in COST:
        return "" if pd.isna(value) else str(int(value)) if col == "trained_epochs" and value == int(value) \
            else f"{value:.1f}"
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if col in PAPER_COLUMNS:
        return f"{value:+.3f}" if col.endswith("_vs_paper") else f"{value:.3f}"
    if col not in SCALARS:
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    text = f"{value:.3f}"
    std = row.get(f"{col}_std")
    lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
    if std is not None and not pd.isna(std):
        text += f" ± {std:.3f}"
    elif lo is not None and not pd.isna(lo):
        text += f" [{lo:.3f}, {hi:.3f}]"
    n = row.get(col.replace("_dedup_accuracy", "_dedup_n")) if "_dedup_" in col else None
    if n is not None and not pd.isna(n):
        text += f" (n={int(n):,})"  # the size of the deduplicated set, computed once per dataset
    split = col.split("_")[0]
    tested = f"{split}_p_vs_best_holm" in row.index  # the table went through significance()
    p = row.get(f"{split}_p_vs_best_holm")
    if col == f"{split}_accuracy":  # not balanced accuracy, not the deduplicated one: they are not tested
        if best:
            text = f"**{text}**"
        elif tested and (p is None or pd.isna(p)):
            text += f" {UNTESTED}"
        elif p is not None and not pd.isna(p) and p >= ALPHA:
            text += " ≈"
    return text


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Formatted strings for Markdown/HTML; columns that are empty everywhere are dropped, and so are
    :data:`SHOWN_WHEN_THEY_DIFFER` columns with one value in every row."""
    table = table.copy()
    table["notes"] = [" ".join(word for word, on in (("paper-faithful", str(p) == "True"), ("fast recipe", r == "fast"),
                                                     ("collapsed", c), (s, s != "done")) if on)
                      for p, r, c, s in zip(table["paper_faithful"], table["recipe"], table["collapsed"],
                                            table["status"], strict=True)]
    best = {col: best_row(table, col) for _, col in DISPLAY if col in SCALARS and col.endswith("_accuracy")}
    out = pd.DataFrame({head: [_cell(r, col, best.get(col) == i) for i, r in table.iterrows()]
                        for head, col in DISPLAY}, index=table.index)
    cross_validated = "folds" in table and table["folds"].notna().any()
    grouped = (~out[GROUPED_ONLY].isin(["", "image"])).any()
    keep = [c for c in out if ((out[c] != "").any() or c in ("model", "val acc", "cross acc"))
            and (c not in SHOWN_WHEN_THEY_DIFFER or out[c].nunique() > 1)
            and (c not in CV_ONLY or cross_validated) and (c != GROUPED_ONLY or grouped)]
    return out[keep]


def to_markdown(frame: pd.DataFrame) -> str:
    def esc(v) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def rank_column(table: pd.DataFrame) -> str:
    """Rank by cross-domain accuracy (the benchmark's question) when there is any, else validation."""
    return "cross_accuracy" if table["cross_accuracy"].notna().any() else "val_accuracy"


def paper_tables(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per dataset and resolution (the paper's Tables 2-5), best validation accuracy first."""
    out = {}
    for (dataset, res), t in summary.groupby(["dataset", "res"], sort=True):
        out[f"table_{dataset}_{int(res)}"] = t.sort_values(["val_accuracy", "model"], ascending=[False, True],
                                                           na_position="last")
    return out


def top5(summary: pd.DataFrame, small: bool = False) -> pd.DataFrame:
    pool = summary[summary["params"] < SMALL_PARAMS] if small else summary
    col = rank_column(summary)
    return pool[pool[col].notna()].sort_values(col, ascending=False).head(5)


CSV_COLUMNS = ["group", *KEYS, "folds", "params", *COST, "runs", "status", "collapsed"]


def csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers, not strings: every metric with its std, interval and p-value where they exist."""
    extra = [c for c in table.columns if c not in CSV_COLUMNS and c != "run_ids" and table[c].notna().any()]
    return table[[c for c in CSV_COLUMNS if c in table.columns] + extra]
