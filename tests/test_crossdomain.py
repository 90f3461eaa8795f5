"""``make crossdomain`` on stored runs: each run's own set, named; class order mapped or refused."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stored_runs import LEVELS, brightness_model, stored_run, write_set

from fer_keras.data.readers import ImageSet, evaluation_set
from fer_keras.evaluate import crossdomain
from fer_keras.evaluate.evaluator import evaluate_set
from fer_keras.runs import read_json

ROOT = Path(__file__).resolve().parent.parent
CANONICAL = sorted(LEVELS)  # angry, happy, sad


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_set(root / "wild_a", 8, seed=1)
    write_set(root / "wild_b", 5, seed=2)
    return root


def test_each_run_is_evaluated_on_its_own_set_and_a_missing_set_fails_the_command(data_root, tmp_path):
    runs = tmp_path / "runs"
    for name, cross in (("a_run", "wild_a"), ("b_run", "btfer"), ("c_run", "wild_b"), ("d_run", None)):
        stored_run(runs / name, CANONICAL, data_root=str(data_root), crossdomain=cross)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fer_keras.evaluate.crossdomain", "--runs", str(runs)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert read_json(runs / "a_run" / "crossdomain_wild_a.json")["n"] == 3 * 8
    assert read_json(runs / "c_run" / "crossdomain_wild_b.json")["n"] == 3 * 5  # its own set, not the first run's
    assert not list((runs / "c_run").glob("crossdomain_wild_a*"))
    assert not list((runs / "b_run").glob("crossdomain_*")) and not list((runs / "d_run").glob("crossdomain_*"))
    assert f"skipped b_run: its cross-domain set {data_root / 'btfer'}" in done.stderr
    assert "crossdomain: 2 evaluated, 0 already evaluated, 1 without a set, 1 skipped (set missing), 0 failed" \
        in done.stdout
    table = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.endswith(("-", "0000"))}
    # Stored runs without a prior correction: its two columns stay empty.
    assert table["a_run"][3:] == ["wild_a", "1.0000", "1.0000", "-", "-"]
    assert table["b_run"][3:] == ["btfer", "-", "-", "-", "-"] and table["c_run"][3] == "wild_b"

    # --data evaluates every run on that one set; every run handled: exit 0.
    assert crossdomain.main(["--runs", str(runs), "--data", str(data_root / "wild_a")]) == 0
    assert all(read_json(runs / r / "crossdomain_wild_a.json")["accuracy"] == 1.0
               for r in ("a_run", "b_run", "c_run", "d_run"))
    assert crossdomain.main(["--runs", str(runs), "--data", str(data_root / "nowhere")]) == 2


def test_stored_model_in_another_class_order_is_mapped(data_root, tmp_path, capsys):
    runs = tmp_path / "runs"
    order = ["sad", "angry", "happy"]
    stored_run(runs / "canonical", CANONICAL, data_root=str(data_root), crossdomain="wild_a")
    stored_run(runs / "reordered", order, data_root=str(data_root), crossdomain="wild_a")
    assert crossdomain.main(["--runs", str(runs)]) == 0, capsys.readouterr().err
    a, b = (read_json(runs / r / "crossdomain_wild_a.json") for r in ("canonical", "reordered"))
    assert a["accuracy"] == b["accuracy"] == 1.0 and a["confusion_matrix"] == b["confusion_matrix"]
    preds = pd.read_csv(runs / "reordered" / "predictions_crossdomain_wild_a.csv")
    assert list(preds.columns[3:]) == [f"p_{c}" for c in CANONICAL]  # the set's order, not the model's
    assert (preds["y_true"] == preds["y_pred"]).all()


def test_unmappable_or_unknown_class_order_fails_naming_both(data_root, tmp_path, capsys):
    images = evaluation_set(data_root / "wild_b")
    order = ("sad", "angry", "happy")  # a set in a non-canonical order: which label means what is not ours to guess
    remap = np.array([order.index(c) for c in images.class_names])
    odd = ImageSet(name="odd", class_names=order, labels=remap[images.labels], paths=images.paths)
    with pytest.raises(ValueError, match=r"model \(angry, happy, sad\) and odd \(sad, angry, happy\)"):
        evaluate_set(brightness_model(CANONICAL), odd, 32, model_classes=CANONICAL, pipeline="tfdata")
    with pytest.raises(ValueError, match="repeats a class"):
        evaluate_set(brightness_model(CANONICAL), images, 32, model_classes=["angry", "angry", "happy", "sad"],
                     pipeline="tfdata")

    run = stored_run(tmp_path / "runs" / "no_order", CANONICAL, data_root=str(data_root), crossdomain="wild_b")
    (run / "classes.json").unlink()
    assert crossdomain.main(["--runs", str(tmp_path / "runs")]) == 1
    assert "order of the model's outputs is unknown" in capsys.readouterr().err
    assert not (run / "crossdomain_wild_b.json").exists()
