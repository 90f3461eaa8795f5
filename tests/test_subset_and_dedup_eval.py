"""Cross-domain sets with fewer classes, and deduplicated scores (issue 24, items 1 and 6)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stored_runs import LEVELS, RES, stored_run, write_set

from fer_keras.data import duplicates
from fer_keras.evaluate import crossdomain
from fer_keras.evaluate.dedup import add_dedup
from fer_keras.evaluate.metrics import classification_metrics
from fer_keras.labels import check_known_classes
from fer_keras.runs import read_json, write_json

CANONICAL = sorted(LEVELS)  # angry, happy, sad


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(duplicates.CACHE_ENV, str(tmp_path / "cache"))


def grey(path: Path, level: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.clip(np.random.default_rng(seed).normal(level, 25, (RES, RES)), 0, 255).astype(np.uint8)
    Image.fromarray(img, mode="L").save(path)


def test_macro_averages_run_over_the_evaluated_classes():
    # classes a, b, c; the set has a and b only; one image of b is predicted as c (absent): wrong either way.
    y = np.array([0, 0, 1, 1])
    probs = np.eye(3)[[0, 0, 1, 2]]
    full = classification_metrics(y, probs, ["a", "b", "c"])
    sub = classification_metrics(y, probs, ["a", "b", "c"], evaluated=["a", "b"])
    assert full["accuracy"] == sub["accuracy"] == 0.75
    assert sub["recall_macro"] == pytest.approx((1 + 0.5) / 2)  # c's recall (no images: 0) is not averaged in
    assert full["recall_macro"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_a_class_the_model_does_not_know_is_refused_with_the_way_out():
    check_known_classes(CANONICAL, ["angry", "happy"], test_name="ck")  # a subset is fine
    with pytest.raises(ValueError, match=r"ck holds class\(es\) the model does not know: contempt") as err:
        check_known_classes(CANONICAL, ["angry", "contempt", "happy"], test_name="ck")
    assert "move the contempt/ folder(s) out of the set" in str(err.value) and "merge the folder" in str(err.value)


@pytest.fixture
def subset_world(tmp_path):
    """A run whose training set shares one image with a cross-domain set that has no 'sad' images."""
    data = tmp_path / "data"
    write_set(data / "train_set" / "train", 10, seed=1)
    write_set(data / "train_set" / "test", 3, seed=2)
    wild = data / "wild_sub"
    for i in range(4):
        grey(wild / "angry" / f"{i}.png", LEVELS["angry"], 10 + i)
        grey(wild / "happy" / f"{i}.png", LEVELS["happy"], 20 + i)
    # Labelled happy, but as bright as 'sad': the model says sad, the set has no sad, so it is wrong. Were the
    # set scored on its own classes' outputs only, happy (nearer than angry) would count as right.
    grey(wild / "happy" / "dim.png", 145, 30)
    shutil.copyfile(data / "train_set" / "train" / "angry" / "0.png", wild / "angry" / "copy.png")
    run = stored_run(tmp_path / "runs" / "r", CANONICAL, data_root=str(data), dataset="train_set",
                     crossdomain="wild_sub")
    return run, wild


def test_subset_set_is_scored_on_its_classes_and_its_training_copies_counted(subset_world, capsys):
    run, wild = subset_world
    assert crossdomain.main(["--runs", str(run.parent)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    result = read_json(run / "crossdomain_wild_sub.json")
    assert result["classes_evaluated"] == ["angry", "happy"]
    assert result["n"] == 10 and result["accuracy"] == pytest.approx(9 / 10)
    assert result["per_class_accuracy"]["happy"] == pytest.approx(4 / 5)
    assert "evaluated on the 2 classes the set has (angry, happy); it has no sad" in out
    dedup = result["dedup"]
    assert (dedup["images"], dedup["exact"]) == (10, 1)
    assert dedup["unique"] == 10 - dedup["exact"] - dedup["near"]
    assert "duplicates: " in out and "1 exact" in out


def test_unknown_class_set_fails_before_the_model_loads(subset_world, capsys):
    run, wild = subset_world
    grey(wild / "contempt" / "0.png", 90, 40)
    assert crossdomain.main(["--runs", str(run.parent)]) == 1
    err = capsys.readouterr().err
    assert "holds class(es) the model does not know: contempt" in err
    assert not (run / "crossdomain_wild_sub.json").exists()


def test_finished_runs_get_a_deduplicated_test_score_from_their_predictions(subset_world):
    run, _ = subset_world
    data = run.parent.parent / "data"
    test = data / "train_set" / "test"
    shutil.copyfile(data / "train_set" / "train" / "sad" / "1.png", test / "sad" / "copy.png")
    files = sorted(str(p) for p in test.rglob("*.png"))
    labels = [CANONICAL.index(Path(f).parent.name) for f in files]
    # Right on every image but the copy: the deduplicated accuracy is 1, the plain one below it.
    preds = [(lab if "copy" not in f else (lab + 1) % 3) for f, lab in zip(files, labels, strict=True)]
    lines = ["file,y_true,y_pred," + ",".join(f"p_{c}" for c in CANONICAL)]
    lines += [f"{f},{t},{p}," + ",".join("1" if k == p else "0" for k in range(3))
              for f, t, p in zip(files, labels, preds, strict=True)]
    (run / "predictions_test.csv").write_text("\n".join(lines) + "\n")
    write_json(run / "metrics.json", {"val": {"accuracy": 1.0}, "test": {"accuracy": 9 / 10}})
    said = add_dedup(run)
    entry = read_json(run / "metrics.json")["test"]["dedup"]
    assert (entry["images"], entry["exact"], entry["accuracy"]) == (10, 1, 1.0)
    assert said and "1 of 10 images duplicate a training image (1 exact" in said[0]
    assert add_dedup(run) == []  # already there: computed once
