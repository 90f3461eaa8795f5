"""The one real run: a one-point grid on the demo data, trained, evaluated cross-domain, reported, Grad-CAM."""

import pandas as pd
import pytest
import yaml

from fer_keras.grid import __main__ as cli
from fer_keras.report.build import build_report
from fer_keras.runs import Run, read_json


def test_grid_trains_evaluates_crossdomain_and_reports(demo_root, tmp_path, capsys):
    grid = tmp_path / "tiny.yaml"
    grid.write_text(yaml.safe_dump({
        "base": "demo.yaml",  # found in configs/
        "fixed": {"model": "sequential_simple", "res": 32, "epochs": 1, "batch": 16, "limit_per_class": 8,
                  "tensorboard": False, "data_root": str(demo_root), "out": str(tmp_path / "runs")},
        "grid": {"balance": ["conservative"]},
    }))
    assert cli.main([str(grid)]) == 0
    run = tmp_path / "runs" / "sequential_simple_32_demo_conservative_scratch_s42_lim8"
    assert Run(run).status()["state"] == "done"
    cross = read_json(run / "crossdomain_demo_wild.json")
    assert cross["n"] == 7 * 24
    preds = pd.read_csv(run / "predictions_crossdomain_demo_wild.csv")
    assert len(preds) == 7 * 24 and (preds["y_true"] == preds["y_pred"]).mean() == pytest.approx(cross["accuracy"])
    assert len(pd.read_csv(run / "predictions_test.csv")) == 7 * 16
    capsys.readouterr()
    assert cli.main([str(grid)]) == 0  # finished: nothing is trained again
    assert "1 complete" in capsys.readouterr().out

    files = build_report(tmp_path / "runs", tmp_path / "report", gradcam=[run.name], gradcam_images=3)
    table = pd.read_csv(tmp_path / "report" / "table_demo_32.csv")
    assert table["val_accuracy"].iloc[0] == pytest.approx(read_json(run / "metrics.json")["val"]["accuracy"], 1e-5)
    assert table["cross_accuracy"].iloc[0] == pytest.approx(cross["accuracy"], 1e-5)
    cam = tmp_path / "report" / "gradcam" / f"{run.name}.png"
    assert cam in files and cam.stat().st_size > 1000
    assert "Grad-CAM" in (tmp_path / "report" / "report.html").read_text()
