"""Build the report from result files: tables (Markdown, CSV), figures (PNG and PDF), one HTML page.

Reads only run folders (config.yaml, metrics.json, run_info.json, crossdomain_*.json,
predictions_*.csv, status.json) and grid manifests; never imports TensorFlow, so it
runs anywhere the results are copied. Grad-CAM (``gradcam.py``) is the one exception
and is only loaded when asked for.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer_keras.report import figures, html, tables
from fer_keras.report.collect import collect, learning_curves
from fer_keras.report.paper import add_paper_columns, read_reference
from fer_keras.runs import read_json

INTRO = [
    "Accuracies: value [95% bootstrap interval]; points with several folds or seeds (seed 42, 43: runs that "
    "differ only in their seed): mean ± sd over them.",
    "Bold: best in the table, chosen on the same split it is tested on, so its lead is somewhat optimistic. "
    "≈: not significantly different from the best (McNemar's exact test on the same images, Holm-adjusted "
    "over the table's comparisons with the best, p ≥ 0.05); no mark: significantly different; "
    f"{tables.UNTESTED}: never tested against the best (no per-image predictions file, or not the same images: "
    "a split carved with another seed, another data root, images seen by several seeds or folds). Precision, "
    "recall, F1 and balanced accuracy (mean recall over the classes present) are on the validation split.",
    "dedup: accuracy on the test (cross-domain) images with no exact or near copy among the run's training "
    "and validation images (fer_keras.evaluate.dedup); the paper's numbers were measured on every test image.",
    "notes: 'collapsed' = in some split one class takes more than half of the predictions, two or more "
    "classes are never predicted, a class is predicted over 3x as often as it occurs, or balanced accuracy "
    "is within 0.03 of chance; other words are the grid status of points without (all) results.",
]


def _write(frame_numbers: pd.DataFrame, frame_text: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    tables.csv_frame(frame_numbers).to_csv(csv, index=False, float_format="%.6g")
    md.write_text(f"# {title}\n\n{tables.to_markdown(frame_text)}")
    return [csv, md]


def build_report(runs: Path, out: Path, *, gradcam: list[str] | None = None, gradcam_images: int = 4,
                 seed: int = 0, paper_csv: Path | None = None) -> list[Path]:
    """Write the report for every run under ``runs`` into ``out``; return the files written.

    ``paper_csv``: published numbers to set beside ours (``fer_keras.report.paper``)."""
    runs, out = Path(runs), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df, records = collect(runs)
    written: list[Path] = []
    if df.empty:
        (out / "report.md").write_text(f"# Report\n\nNo runs under {runs}.\n")
        return [out / "report.md"]
    df.to_csv(out / "runs.csv", index=False, float_format="%.6g")
    written.append(out / "runs.csv")
    summary = tables.summarize(df, records, seed=seed)
    paper_note = []
    if paper_csv is not None:
        ref = read_reference(paper_csv)
        summary = add_paper_columns(summary, df, ref)
        print(ref.summary())
        paper_note = [ref.summary() + " Paper test acc: the notebook's best validation accuracy (it validated "
                      "on the test folder); paper cross acc: its BTFER accuracy, shown for runs tested on btfer."]
    html_tables: dict[str, pd.DataFrame] = {}
    pairs = []
    for name, table in tables.paper_tables(summary).items():
        table, p = tables.significance(table, records)
        pairs.append(p.assign(table=name))
        text = tables.display(table)
        title = f"{table['dataset'].iloc[0]} at {int(table['res'].iloc[0])}x{int(table['res'].iloc[0])} ({name})"
        written += _write(table, text, out / name, title)
        html_tables[title] = text
    rank = tables.rank_column(summary)
    shown = [set(summary.loc[summary[rank].notna(), "group"])]
    for name, small in (("top5_overall", False), ("top5_small", True)):
        top = tables.top5(summary, small)
        if set(top["group"]) in shown:  # a grid of five points or fewer: the same rows as a table already there
            continue
        shown.append(set(top["group"]))
        title = f"Top 5 by {'cross-domain' if rank == 'cross_accuracy' else 'validation'} accuracy"
        title += f" (< {tables.SMALL_PARAMS / 1e6:.0f}M params)" if small else ""
        text = tables.display(top)
        written += _write(top, text, out / name, title)
        html_tables[title] = text
    everything = tables.display(summary)
    written += _write(summary, everything, out / "results", "All grid points")
    html_tables["All grid points"] = everything
    sig = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    sig.to_csv(out / "significance.csv", index=False, float_format="%.6g")
    written.append(out / "significance.csv")

    curves = learning_curves(records)
    if not curves.empty:
        curves.to_csv(out / "learning_curves.csv", index=False, float_format="%.6g")
        written.append(out / "learning_curves.csv")
    figs = figures.all_figures(summary, records, out, curves)
    extra: list[Path] = []
    if gradcam:
        from fer_keras.report.gradcam import gradcam_figures

        extra = gradcam_figures([records[r].run_dir if r in records else runs / r for r in gradcam], out / "gradcam",
                                n_images=gradcam_images)
    intro = [f"{len(df)} run(s) under {runs}: {int(df['val_accuracy'].notna().sum())} with results."] + INTRO
    intro += paper_note
    for failures in sorted(runs.rglob("failures.json")):
        failed = read_json(failures)
        if failed:
            intro.append(f"{len(failed)} failed run(s) listed in {failures}: {', '.join(sorted(failed))}")
    page = html.page("fer_keras report", intro, html_tables,
                     [p for p in figs if p.parent.name != "confusion"],
                     [p for p in figs if p.parent.name == "confusion"], extra)
    (out / "report.html").write_text(page)
    return written + figs + [p.with_suffix(".pdf") for p in figs] + extra + [out / "report.html"]
