"""The report's seeds, untested marks and deduplicated columns (issue 24, items 1, 2 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from grid_fakes import write_run

from fer_keras.report import tables
from fer_keras.report.collect import collect
from fer_keras.report.paper import add_paper_columns, read_reference


def _cfg(model: str, seed: int = 42, dataset: str = "demo") -> dict:
    return {"model": model, "res": 48, "dataset": dataset, "pretrain": "scratch", "balance": "conservative",
            "seed": seed, "fold": None, "folds": None, "paper_faithful": False, "crossdomain": "wild"}


def _rid(c: dict) -> str:
    return f"{c['model']}_48_{c['dataset']}_conservative_scratch_s{c['seed']}"


def _table(runs: Path):
    df, records = collect(runs)
    summary = tables.summarize(df, records)
    (name, table), = tables.paper_tables(summary).items()
    table, _ = tables.significance(table, records)
    return table, tables.display(table).set_index("model")


def test_runs_of_one_recipe_with_several_seeds_are_one_row_with_mean_and_sd(tmp_path):
    for seed, val in ((42, 0.70), (43, 0.80)):
        write_run(tmp_path / _rid(_cfg("multi", seed)), _cfg("multi", seed), val=val, n=200)
    write_run(tmp_path / _rid(_cfg("solo", 7)), _cfg("solo", 7), val=0.90, n=200)
    table, text = _table(tmp_path)
    assert len(table) == 2
    row = table.set_index("model").loc["multi"]
    assert row["val_accuracy"] == pytest.approx(0.75) and row["val_accuracy_std"] == pytest.approx(0.0707, abs=1e-4)
    assert row["seed"] == "42, 43" and row["runs"] == "2/2" and row["group"] == "multi_48_demo_conservative_scratch_s*"
    assert text.loc["multi", "val acc"].startswith("0.750 ± 0.071")
    assert table.set_index("model").loc["solo", "seed"] == 7  # one seed: its own row, its own seed


def test_seeds_of_two_recipes_that_share_a_run_id_are_two_rows_that_say_how_they_differ(tmp_path):
    """Input options are not in the run id: runs that differ in them are not seeds of one recipe."""
    for seed, val, extra in ((42, 0.70, {}), (43, 0.72, {}), (44, 0.80, {"equalize": True, "color": "auto"}),
                             (45, 0.84, {"equalize": True, "color": "auto"})):
        c = {**_cfg("multi", seed), **extra}
        write_run(tmp_path / _rid(c), c, val=val, n=200)
    table, _ = _table(tmp_path)
    assert len(table) == 2 and set(table["runs"]) == {"2/2"}
    by_seeds = table.set_index("seed")
    assert by_seeds.loc["42, 43", "val_accuracy"] == pytest.approx(0.71)
    assert by_seeds.loc["44, 45", "val_accuracy"] == pytest.approx(0.82)
    assert by_seeds.loc["44, 45", "domain"] == "colour auto, equalised" and pd.isna(by_seeds.loc["42, 43", "domain"])
    assert table["group"].nunique() == 2
    shown = tables.display(tables.summarize(*collect(tmp_path)))
    assert set(shown["domain options"]) == {"", "colour auto, equalised"}


def test_rows_not_tested_against_the_best_are_marked_untested(tmp_path):
    write_run(tmp_path / "best", _cfg("best"), val=0.85, n=300)
    write_run(tmp_path / "close", _cfg("close"), val=0.84, n=300)  # tested, not significant: ≈
    write_run(tmp_path / "far", _cfg("far"), val=0.50, n=300)  # tested, significant: no mark
    write_run(tmp_path / "blind", _cfg("blind"), val=0.83, n=300)
    (tmp_path / "blind" / "predictions_val.csv").unlink()  # a confusion matrix only: never paired
    _, text = _table(tmp_path)
    marks = text["val acc"]
    assert marks["best"].startswith("**") and marks["close"].endswith("≈")
    assert not marks["far"].endswith(("≈", tables.UNTESTED))
    assert marks["blind"].endswith(tables.UNTESTED) and "≈" not in marks["blind"]


def test_a_table_never_tested_has_no_untested_marks_outside_significance(tmp_path):
    write_run(tmp_path / "a", _cfg("a"), val=0.8, n=100)
    write_run(tmp_path / "b", _cfg("b"), val=0.7, n=100)
    df, records = collect(tmp_path)
    text = tables.display(tables.summarize(df, records))  # top-5 / all-points tables: no tests were run
    assert not any(cell.endswith(tables.UNTESTED) for cell in text["val acc"])


def test_deduplicated_test_accuracy_stands_beside_the_test_and_paper_columns(tmp_path):
    c = _cfg("lenet5", dataset="fer2013")
    run = write_run(tmp_path / "runs" / _rid(c), c, val=0.6, test=0.62, n=100)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["test"]["dedup"] = {"images": 100, "exact": 7, "near": 3, "unique": 90, "accuracy": 0.58}
    (run / "metrics.json").write_text(json.dumps(metrics))
    ref = tmp_path / "paper.csv"
    ref.write_text("config,dataset,model,best_val_acc,btfer_acc_pct\n48 x 48 - Conservative,FER2013,LeNet,0.5,40\n")
    df, records = collect(tmp_path / "runs")
    summary = add_paper_columns(tables.summarize(df, records), df, read_reference(ref))
    row = summary.iloc[0]
    assert row["test_dedup_accuracy"] == pytest.approx(0.58)
    assert row["test_accuracy_vs_paper"] == pytest.approx(0.12)
    assert row["test_dedup_accuracy_vs_paper"] == pytest.approx(0.08)
    text = tables.display(summary).iloc[0]
    assert text["test acc dedup"] == "0.580 (n=90)" and text["dedup − paper"] == "+0.080"
