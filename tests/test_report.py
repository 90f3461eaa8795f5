"""The report from result files the test writes: numbers, marks, figures, HTML, no TensorFlow."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from grid_fakes import write_run

from fer_keras.evaluate.bootstrap import bootstrap_ci, correct_from_confusion, holm, mcnemar_p
from fer_keras.report import tables
from fer_keras.report.__main__ import main as report_main
from fer_keras.report.collect import collect
from fer_keras.runs import write_json

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def _cfg(model, res=48, pretrain="scratch", balance="conservative", fold=None, folds=None, dataset="demo",
         crossdomain="wild"):
    return {"model": model, "res": res, "dataset": dataset, "pretrain": pretrain, "balance": balance, "seed": 42,
            "fold": fold, "folds": folds, "paper_faithful": False, "crossdomain": crossdomain}


def _rid(c):
    rid = f"{c['model']}_{c['res']}_{c['dataset']}_{c['balance']}_{c['pretrain']}_s42"
    return rid + (f"_f{c['fold']}" if c["fold"] is not None else "")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    specs = [  # (config, val, cross, params, collapsed)
        (_cfg("big"), 0.80, 0.60, 20_000_000, False),
        (_cfg("twin"), 0.80, 0.60, 2_000_000, False),  # same predictions as 'big': not significantly different
        (_cfg("small"), 0.30, 0.40, 1_000_000, True),
        (_cfg("close"), 0.845, 0.64, 4_000_000, False),  # 3 images from the best: not significant
        (_cfg("big", res=224), 0.90, 0.70, 20_000_000, False),
        (_cfg("big", pretrain="imagenet"), 0.85, 0.65, 20_000_000, False),
        (_cfg("big", balance="simple"), 0.78, 0.58, 20_000_000, False),
    ]
    for c, val, cross, params, collapsed in specs:
        write_run(runs / _rid(c), c, val=val, cross=cross, params=params, collapsed=collapsed, n=700)
    for fold, acc in enumerate((0.6, 0.7, 0.8)):  # a cross-validated point: 3 folds
        c = _cfg("cvnet", fold=fold, folds=3)
        write_run(runs / _rid(c), c, val=acc, test=acc - 0.1, cross=acc - 0.2, params=3_000_000)
    missing = _cfg("pending_net")  # listed by the grid, no result yet
    write_json(runs / "grid_demo.json", {"points": [{"run_id": _rid(missing), "group": _rid(missing),
                                                      "config": missing}]})
    out = tmp_path_factory.mktemp("report")
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from fer_keras.report.__main__ import main
        assert main(["--runs", {str(runs)!r}, "--out", {str(out)!r}]) == 0
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not heavy, heavy
    """)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def test_tables_hold_the_numbers_of_the_result_files(report):
    t = pd.read_csv(report / "table_demo_48.csv").set_index("group")
    big = "big_48_demo_conservative_scratch_s42"
    assert t.loc[big, "val_accuracy"] == pytest.approx(0.80)
    assert t.loc[big, "cross_accuracy"] == pytest.approx(0.60)
    assert t.loc[big, "params"] == 20_000_000
    assert t.loc[big, "val_accuracy_lo"] < 0.80 < t.loc[big, "val_accuracy_hi"]
    assert t.loc["big_48_demo_conservative_imagenet_s42", "val_accuracy"] == pytest.approx(0.85)
    cv = t.loc["cvnet_48_demo_conservative_scratch_s42"]
    assert cv["val_accuracy"] == pytest.approx(0.7) and cv["val_accuracy_std"] == pytest.approx(0.1)
    assert cv["test_accuracy"] == pytest.approx(0.6) and cv["runs"] == "3/3"
    assert pd.isna(t.loc["pending_net_48_demo_conservative_scratch_s42", "val_accuracy"])
    assert bool(t.loc["small_48_demo_conservative_scratch_s42", "collapsed"])
    # Best first by validation accuracy.
    assert list(t.index[:3]) == ["big_48_demo_conservative_imagenet_s42", "close_48_demo_conservative_scratch_s42", big]
    assert set(pd.read_csv(report / "table_demo_224.csv")["group"]) == {"big_224_demo_conservative_scratch_s42"}


def test_markdown_marks_best_not_significant_and_collapsed(report):
    md = (report / "table_demo_48.md").read_text()
    rows = {line.split("|")[1].strip() + line.split("|")[2].strip() + line.split("|")[3].strip(): line
            for line in md.splitlines()[3:]}
    assert "**0.850 [" in rows["bigimagenetconservative"]
    # 'twin' answers exactly like 'big', which is 0.05 below the best on 700 images: different from the best...
    assert "≈" not in rows["twinscratchconservative"].split("|")[6]
    # ... but no different from 'big' itself in the pairwise list.
    sig = pd.read_csv(report / "significance.csv")
    pair = sig[(sig["split"] == "val") & sig["a"].str.startswith("big_48_demo_conservative_scratch")
               & sig["b"].str.startswith("twin")]
    assert len(pair) == 1 and pair["p"].iloc[0] == 1.0 and not pair["significant"].iloc[0]
    assert rows["closescratchconservative"].split("|")[6].strip().endswith("≈")
    assert "collapsed" in rows["smallscratchconservative"]
    # The bold row is the reference of every best-vs-each test, and Holm never lowers a p-value.
    family = sig[sig["vs_best"]]
    assert set(family["split"]) == {"val", "cross"}
    assert (family["a"] == "big_48_demo_conservative_imagenet_s42").all()
    assert (family["p_holm"] >= family["p"]).all() and sig.loc[~sig["vs_best"], "p_holm"].isna().all()
    assert "0.700 ± 0.100" in rows["cvnetscratchconservative"]
    assert "pending" in rows["pending_netscratchconservative"]


def test_top5_and_small_models(report):
    top = pd.read_csv(report / "top5_overall.csv")
    assert top["group"].iloc[0] == "big_224_demo_conservative_scratch_s42"  # ranked by cross-domain accuracy
    small = pd.read_csv(report / "top5_small.csv")
    assert (small["params"] < 5_000_000).all() and "twin_48_demo_conservative_scratch_s42" in set(small["group"])


def test_figures_and_self_contained_html(report):
    for name in ("res_48_vs_224", "pretrain", "balance", "scratch_vs_pretrained", "per_class_crossdomain"):
        path = report / "figures" / f"{name}.png"
        assert path.is_file() and path.stat().st_size > 1000, name
    assert not (report / "figures" / "dataset.png").exists()  # one dataset only: nothing to compare
    confusions = list((report / "figures" / "confusion").glob("*.png"))
    assert len(confusions) == 10 and all(p.stat().st_size > 1000 for p in confusions)
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 14 and "src=\"figures" not in html
    # Every Markdown table is in the page as an HTML table, the best cell bold as in the .md files.
    assert html.count("<table") == len(list(report.glob("*.md"))) == 5
    for stem in ("table_demo_48", "table_demo_224"):
        assert re.search(rf"<h2>[^<]*\({stem}\)</h2><table", html), stem
    demo_48 = html.split("(table_demo_48)</h2>")[1].split("</table>")[0]
    assert "<td>big</td>" in demo_48 and "<b>0.850 [" in demo_48 and "**" not in demo_48


def test_tables_name_the_cross_domain_set(report):
    md = (report / "table_demo_48.md").read_text().splitlines()
    header = [c.strip() for c in md[2].split("|")]
    at = header.index("cross set")
    assert header[at + 1] == "cross acc"
    assert all(line.split("|")[at].strip() == "wild" for line in md[4:] if "pending" not in line)
    assert "| cross set |" in (report / "top5_overall.md").read_text()
    assert set(pd.read_csv(report / "table_demo_48.csv")["cross_set"].dropna()) == {"wild"}


def test_figures_name_the_cross_domain_set(tmp_path, monkeypatch):
    from fer_keras.report import figures, tables
    from fer_keras.report.collect import collect

    # Configured for btfer, but its result is on 'wild': the figures say 'wild'.
    for c in (_cfg("a"), {**_cfg("a", res=224), "crossdomain": "btfer"}):
        write_run(tmp_path / _rid(c), c, val=0.7, cross=0.5, n=70)
    df, records = collect(tmp_path)
    assert list(df["cross_set"]) == ["wild", "wild"]
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    summary = tables.summarize(df, records)
    figures.comparison(summary, "res", "input resolution", tmp_path / "res.png")
    figures.per_class_crossdomain(summary, records, tmp_path / "per_class.png")
    figures.confusion(records[df["run_id"].iloc[0]], tmp_path / "confusion.png")
    bars, per_class, confusion = drawn
    assert bars.axes[1].get_ylabel() == "cross-domain accuracy\n(on wild)"
    assert per_class.axes[0].get_title() == "Per-class cross-domain accuracy on wild"
    assert [ax.get_title() for ax in confusion.axes] == ["val (n=70)", "cross: wild (n=70)"]


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 1000, 10_000):
        correct = rng.random(n) < 0.7
        lo, hi = bootstrap_ci(correct)
        assert lo <= correct.mean() <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    lo, hi = bootstrap_ci(rng.normal(5, 1, 500))  # not only 0/1 values
    assert lo < 5.0 < hi
    assert correct_from_confusion([[3, 1], [0, 2]]).tolist() == [1] * 5 + [0]


def test_mcnemar_sees_only_disagreements():
    a = np.array([1] * 50 + [0] * 50)
    assert mcnemar_p(a, a) == 1.0
    b = a.copy()
    b[:30] = 0  # b is wrong on 30 images a gets right, and never the other way round
    assert mcnemar_p(a, b) < 1e-6
    with pytest.raises(ValueError, match="same images"):
        mcnemar_p(a, a[:10])


def test_holm_adjusts_step_down_and_skips_missing_values():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([np.nan, 0.02, 0.5, 0.001])
    assert np.isnan(adjusted[0]) and adjusted[1:].tolist() == pytest.approx([0.04, 0.5, 0.003])
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]


def _tables(runs: Path) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Per paper table: (numbers with p-values, displayed strings, pairwise tests)."""
    df, records = collect(runs)
    out = {}
    for name, table in tables.paper_tables(tables.summarize(df, records)).items():
        table, pairs = tables.significance(table, records)
        out[name] = (table, tables.display(table), pairs)
    return out


def test_holm_turns_three_borderline_differences_into_not_significant(tmp_path):
    write_run(tmp_path / "best", _cfg("best"), val=0.85, n=700)
    for i in range(3):  # each wrong on 6 images the best gets right: raw p = 2 / 2**6 = 0.031
        write_run(tmp_path / f"other{i}", _cfg(f"other{i}"), val=589 / 700, n=700)
    table, text, pairs = _tables(tmp_path)["table_demo_48"]
    family = pairs[pairs["vs_best"]]
    assert len(family) == 3 and (family["a"] == "best").all()  # group = run folder name
    assert family["p"].tolist() == pytest.approx([1 / 32] * 3)
    assert family["p_holm"].tolist() == pytest.approx([3 / 32] * 3) and not family["significant"].any()
    marks = text.set_index("model")["val acc"]
    assert marks["best"].startswith("**") and all(marks[f"other{i}"].endswith("≈") for i in range(3))
    assert table.set_index("model")["val_p_vs_best_holm"].drop("best").tolist() == pytest.approx([3 / 32] * 3)


def test_the_bold_row_is_the_test_reference_even_when_it_is_a_cross_validated_point(tmp_path):
    write_run(tmp_path / "single", _cfg("single"), val=0.80, test=0.70, n=300)
    for fold, acc in enumerate((0.82, 0.84, 0.86)):  # best by mean; its val images repeat across folds
        c = _cfg("cv", fold=fold, folds=3)
        write_run(tmp_path / _rid(c), c, val=acc, test=acc - 0.1, n=300)
    for fold, acc in enumerate((0.70, 0.72, 0.74)):  # same folds (same test files): pairable on test
        c = _cfg("cv2", fold=fold, folds=3)
        write_run(tmp_path / _rid(c), c, val=acc, test=acc - 0.1, n=300)
    table, text, pairs = _tables(tmp_path)["table_demo_48"]
    marks = text.set_index("model")
    assert marks.loc["cv", "val acc"].startswith("**")
    # The bold cross-validated row cannot be paired on validation images it saw three times: no tests there.
    assert pairs[pairs["split"] == "val"].empty and "≈" not in "".join(marks["val acc"])
    # On the disjoint test folds it can, and it is the reference.
    assert marks.loc["cv", "test acc"].startswith("**")
    test_family = pairs[(pairs["split"] == "test") & pairs["vs_best"]]
    assert test_family["a"].tolist() == ["cv_48_demo_conservative_scratch_s42"]
    assert test_family["b"].tolist() == ["cv2_48_demo_conservative_scratch_s42"] and test_family["n"].iloc[0] == 900


def test_cross_validation_intervals_count_each_image_once(tmp_path):
    write_run(tmp_path / "single", _cfg("single"), val=0.6, test=0.6, cross=0.6, n=300)
    for fold in range(3):  # three folds, identical answers on the same cross-domain images
        c = _cfg("cv", fold=fold, folds=3)
        write_run(tmp_path / _rid(c), c, val=0.6, test=0.6, cross=0.6, n=300)
    for fold, acc in enumerate((0.5, 0.6, 0.7)):  # no per-image predictions: spread over folds
        c = _cfg("nofiles", fold=fold, folds=3)
        run = write_run(tmp_path / _rid(c), c, val=acc, cross=acc, n=300)
        for f in run.glob("predictions_*.csv"):
            f.unlink()
    t = _tables(tmp_path)["table_demo_48"][0].set_index("model")

    def width(model: str, split: str) -> float:
        return t.loc[model, f"{split}_accuracy_hi"] - t.loc[model, f"{split}_accuracy_lo"]

    # Same images three times are still 300 images: the interval of one run, not of 900 images.
    assert t.loc["cv", ["cross_accuracy_lo", "cross_accuracy_hi"]].tolist() == pytest.approx(
        t.loc["single", ["cross_accuracy_lo", "cross_accuracy_hi"]].tolist())
    assert width("cv", "val") == pytest.approx(width("single", "val"))
    # Disjoint test folds are 900 different images: about 1/sqrt(3) of one run's width.
    assert width("cv", "test") == pytest.approx(width("single", "test") / np.sqrt(3), rel=0.2)
    # Student-t interval of the fold means, computed here: mean 0.6, sd 0.1, 3 folds,
    # t(0.975, 2 degrees of freedom) = 4.302652729911275 (tables of the t distribution).
    half = 4.302652729911275 * 0.1 / np.sqrt(3)
    assert t.loc["nofiles", ["cross_accuracy_lo", "cross_accuracy_hi"]].tolist() == pytest.approx(
        [0.6 - half, 0.6 + half], abs=1e-9)


PAPER_CSV = """config,dataset,model,best_val_acc,btfer_acc_pct
48 x 48 - Conservative,FER2013,Sequential,0.99,99.0
48 x 48 - Conservative,FER2013,Sequential 1,0.60,55.0
48 x 48 - SIMPLE,FER2013,Conv3,0.50,40.0
48 x 48 - Conservative,FER2013,MNIST_NET,0.40,30.0
48 x 48 - Conservative,Affectnet 7,MobileNet,0.45,35.0
224 x 224 - Simple,RAFDB,VGG16 - VGGFace,0.85,60.0
"""


def test_paper_column_sets_the_published_numbers_beside_ours(tmp_path, capsys):
    runs = tmp_path / "runs"
    points = [  # (config, test, cross)
        (_cfg("sequential_simple", dataset="fer2013", crossdomain="btfer"), 0.62, 0.50),
        (_cfg("sequential_3conv", dataset="fer2013", balance="simple"), 0.55, 0.45),  # cross-domain on 'wild'
        (_cfg("sequential_3conv", dataset="fer2013"), 0.56, 0.46),  # conservative: no paper row
        (_cfg("mobilenet", dataset="affectnet", pretrain="imagenet", crossdomain="btfer"), 0.40, 0.30),
    ]
    for c, test, cross in points:
        write_run(runs / _rid(c), c, val=test, test=test, cross=cross, n=200, cross_set=c["crossdomain"])
    csv = tmp_path / "paper.csv"
    csv.write_text(PAPER_CSV)
    assert report_main(["--runs", str(runs), "--out", str(tmp_path / "report"), "--paper-csv", str(csv)]) == 0
    # MNIST_NET is unmapped; 'Sequential' maps where 'Sequential 1' does, and the name listed first in
    # MODEL_NAMES wins whatever the row order.
    assert "4 of 6 rows" in capsys.readouterr().out
    t = pd.read_csv(tmp_path / "report" / "results.csv").set_index("group")
    seq = t.loc["sequential_simple_48_fer2013_conservative_scratch_s42"]
    assert seq["paper_test_accuracy"] == pytest.approx(0.60) and seq["test_accuracy_vs_paper"] == pytest.approx(0.02)
    assert seq["paper_cross_accuracy"] == pytest.approx(0.55) and seq["cross_accuracy_vs_paper"] == pytest.approx(-0.05)
    conv3 = t.loc["sequential_3conv_48_fer2013_simple_scratch_s42"]
    assert conv3["paper_test_accuracy"] == pytest.approx(0.50) and pd.isna(conv3["paper_cross_accuracy"])
    assert pd.isna(t.loc["sequential_3conv_48_fer2013_conservative_scratch_s42", "paper_test_accuracy"])
    # A notebook name without its initialisation stands beside every initialisation of the model.
    assert t.loc["mobilenet_48_affectnet_conservative_imagenet_s42", "paper_cross_accuracy"] == pytest.approx(0.35)
    md = (tmp_path / "report" / "table_fer2013_48.md").read_text()
    assert "paper test acc" in md and "| 0.600 | +0.020 | 0.550 | -0.050 |" in md
    assert "4 of 6 rows" in (tmp_path / "report" / "report.html").read_text()



def test_figures_fit_a_paper_and_a_small_grid_has_no_duplicate_tables(tmp_path):
    from PIL import Image

    from fer_keras.report.build import build_report

    for model, val, cross in (("a", 0.7, 0.5), ("b", 0.6, 0.55)):  # two points: every table would be the same
        for res in (48, 224):
            c = _cfg(model, res=res)
            write_run(tmp_path / "runs" / _rid(c), c, val=val + res / 2240, cross=cross, n=140)
    written = build_report(tmp_path / "runs", tmp_path / "report")
    figures = tmp_path / "report" / "figures"
    for png in [figures / "res_48_vs_224.png", *sorted((figures / "confusion").glob("*.png"))]:
        with Image.open(png) as img:
            assert img.info["dpi"] == pytest.approx((300, 300), abs=0.5), png
        pdf = png.with_suffix(".pdf")
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf in written
    assert not list((tmp_path / "report").glob("top5_*"))  # four points: the top 5 would repeat the full table
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Top 5" not in html and "**" not in html
    assert html.count("<b>") == html.count("</b>") >= 2  # the best of each split, bold as in the .md tables


def test_bars_carry_the_reports_intervals(tmp_path, monkeypatch):
    from fer_keras.report import figures

    for res in (48, 224):
        c = _cfg("a", res=res)
        write_run(tmp_path / _rid(c), c, val=0.7, cross=0.5, n=140)
    df, records = collect(tmp_path)
    summary = tables.summarize(df, records)
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    figures.comparison(summary, "res", "input resolution", tmp_path / "res.png")
    val_axis = drawn[0].axes[0]
    caps = [line for line in val_axis.lines if len(line.get_ydata()) == 1]  # the error bars' caps
    lo, hi = sorted({round(float(line.get_ydata()[0]), 6) for line in caps})
    row = summary.iloc[0]
    assert (lo, hi) == (pytest.approx(row["val_accuracy_lo"]), pytest.approx(row["val_accuracy_hi"]))


def test_one_run_id_in_two_folders_is_two_experiments(tmp_path):
    """runs/fast16/<id> and runs/fast36/<id> (other epochs, same id) are two rows, not two folds of one."""
    c = _cfg("vgg_lite")
    write_run(tmp_path / "fast16" / _rid(c), c, val=0.5, test=0.6)
    write_run(tmp_path / "fast36" / _rid(c), c, val=0.5, test=0.7)
    runs, records = collect(tmp_path)
    assert sorted(runs["run_id"]) == [f"fast16/{_rid(c)}", f"fast36/{_rid(c)}"]
    assert runs["group"].nunique() == 2 and len(records) == 2
    summary = tables.summarize(runs, records)
    assert sorted(summary["test_accuracy"].round(3)) == [0.6, 0.7]
    shown = tables.display(summary)
    assert not {"epochs", "lr", "erasing", "TTA"} & set(shown)  # both runs say nothing of them: nothing to tell apart


def test_rows_that_differ_only_in_schedule_or_options_say_so(tmp_path):
    """Epochs, lr and model options appear as columns exactly when the rows of a table differ in them."""
    c = _cfg("vgg_lite")
    write_run(tmp_path / "fast16" / _rid(c), {**c, "epochs": 16, "lr": 0.002}, val=0.5, test=0.6)
    write_run(tmp_path / "fast36" / _rid(c), {**c, "epochs": 36, "lr": 0.002}, val=0.5, test=0.7)
    write_run(tmp_path / "fast70" / _rid(c), {**c, "epochs": 70, "lr": 0.002, "model_options": {"width": 64}},
              val=0.5, test=0.7)
    write_run(tmp_path / "fast70re" / _rid(c), {**c, "epochs": 70, "lr": 0.002, "model_options": {"width": 64},
                                                "random_erasing": 0.5, "tta_flip": True, "tta_zoom": True},
              val=0.5, test=0.7)
    (table, shown, _), = _tables(tmp_path).values()
    assert "lr" not in shown  # the same in every row
    rows = {tuple(r) for r in shown[["epochs", "options", "erasing", "TTA"]].itertuples(index=False)}
    assert rows == {("16", "", "", "none"), ("36", "", "", "none"), ("70", "width=64", "", "none"),
                    ("70", "width=64", "0.5", "flip+zoom")}
    assert set(tables.csv_frame(table)["epochs"]) == {16, 36, 70}


def _curve(run: Path, minutes: list[float]) -> None:
    rows = "".join(f"main,{i + 1},{m * 60},,,,\n" for i, m in enumerate(minutes))
    (run / "learning_curve.csv").write_text("phase,epoch,elapsed_s,accuracy,val_accuracy,val_loss,learning_rate\n"
                                            + rows)


def test_training_cost_and_a_time_budget_are_shown_beside_the_scores(tmp_path):
    """'train min' and 'epochs run' come from each run's learning curve (the mean over folds); runs under
    another time budget are another recipe, not seeds of one, and say their budget."""
    for fold, minutes in enumerate(([2.0, 4.0], [1.5, 3.0, 4.5, 6.0])):
        c = {**_cfg("cv", fold=fold, folds=2), "train_minutes": 10}
        _curve(write_run(tmp_path / _rid(c), c, val=0.6, test=0.5, n=100), minutes)
    c = _cfg("vgg_lite")
    for seed, budget in ((42, 30), (43, 60)):
        rid = _rid(c).replace("_s42", f"_s{seed}")
        _curve(write_run(tmp_path / rid, {**c, "seed": seed, "train_minutes": budget}, val=0.5, test=0.6, n=100),
               [budget - 1.0])
    (table, shown, _), = _tables(tmp_path).values()
    by_model = shown.set_index(["model", "time budget (min)"])
    assert by_model.loc[("cv", "10"), ["train min", "epochs run"]].tolist() == ["5.0", "3"]  # (4 + 6) / 2, (2 + 4) / 2
    assert by_model.loc[("vgg_lite", "30"), ["train min", "epochs run"]].tolist() == ["29.0", "1"]
    assert by_model.loc[("vgg_lite", "60"), "train min"] == "59.0"  # two budgets: two rows, not two seeds
    assert set(tables.csv_frame(table)["train_minutes"]) == {10, 30, 60}


def test_recomputed_batchnorm_statistics_make_another_recipe_not_another_seed(tmp_path):
    """Runs with and without batchnorm_recompute are two rows, each saying which; a run saved before the option
    existed reads as without it, so it is a seed of the recipe without it."""
    c = {**_cfg("vgg_lite"), "recipe": "fast"}
    for seed, option in ((42, None), (43, False), (44, True), (45, True)):
        config = {**c, "seed": seed, **({} if option is None else {"batchnorm_recompute": option})}
        write_run(tmp_path / _rid(c).replace("_s42", f"_s{seed}"), config, val=0.5, test=0.6, n=100)
    (table, shown, _), = _tables(tmp_path).values()
    assert sorted(zip(shown["BN recomputed"], shown["runs"], strict=True)) == [("False", "2/2"), ("True", "2/2")]
    assert sorted(tables.csv_frame(table)["batchnorm_recompute"]) == [False, True]
