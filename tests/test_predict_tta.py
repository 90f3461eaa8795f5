"""The predictor applies a run's flip test-time augmentation exactly as evaluation does.

The model has no left-right symmetry (Flatten -> Dense with fixed random weights), so a random
image and its mirror image get different probabilities and the TTA mean differs from either.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from fer_keras.config import make_config, save_config
from fer_keras.data.readers import ImageSet
from fer_keras.evaluate.evaluator import predict_probs
from fer_keras.models._head import image_input
from fer_keras.predict import cli
from fer_keras.predict.predictor import load_run
from fer_keras.runs import Run, write_json

CLASSES = ("happy", "sad", "angry")
RES = 16


def lopsided_model() -> keras.Model:
    inputs, x = image_input((RES, RES, 3))
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="lopsided")
    rng = np.random.default_rng(0)
    model.get_layer("predictions").set_weights([rng.normal(0, 0.1, (RES * RES * 3, 3)).astype("float32"),
                                                np.zeros(3, "float32")])
    return model


def save_run(folder, model: keras.Model, tta_flip: bool):
    run = Run(folder)
    run.dir.mkdir(parents=True)
    model.save(run.model_file)
    write_json(run.classes_file, list(CLASSES))
    values = {"recipe": "fast", "tta_flip": True} if tta_flip else {}
    save_config(make_config({"model": "sequential_simple", "res": RES, **values}), run.config_file)
    return run.dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    model, root = lopsided_model(), tmp_path_factory.mktemp("runs")
    return {"tta": save_run(root / "tta", model, True), "plain": save_run(root / "plain", model, False)}


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (10, RES, RES, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def expected(runs, pixels) -> dict[bool, np.ndarray]:
    """What evaluation computes for these images, with and without flip TTA."""
    model = Run(runs["tta"]).model()
    images = ImageSet(name="t", class_names=CLASSES, labels=np.arange(len(pixels)) % 3, pixels=pixels)
    probs = {flip: predict_probs(model, images, RES, model_classes=CLASSES, pipeline="tfdata", tta_flip=flip)
             for flip in (False, True)}
    assert np.abs(probs[True] - probs[False]).max() > 1e-2  # the check below can tell them apart
    return probs


def predicted(predictor, pixels) -> np.ndarray:
    preds = predictor.predict(pixels, batch_size=4)
    return np.array([list(p.probabilities.values()) for p in preds])


@pytest.mark.parametrize("run,override,flip", [
    ("tta", None, True), ("plain", None, False),  # as each run was evaluated
    ("tta", False, False), ("plain", True, True),  # the caller's choice wins
])
def test_predictions_equal_the_evaluators(runs, pixels, expected, run, override, flip):
    predictor = load_run(runs[run], tta_flip=override)
    assert predictor.tta_flip is flip
    np.testing.assert_allclose(predicted(predictor, pixels), expected[flip], atol=1e-5)


def test_a_runs_best_keras_reads_its_config_and_a_saved_copy_keeps_it(runs, pixels, expected, tmp_path):
    assert load_run(Run(runs["tta"]).model_file).tta_flip
    for run, flip in (("tta", True), ("plain", False)):
        copy = load_run(load_run(runs[run]).save(tmp_path / run / "exported.keras"))
        assert copy.tta_flip is flip
        np.testing.assert_allclose(predicted(copy, pixels), expected[flip], atol=1e-5)
    bare = tmp_path / "bare.keras"  # a model file with no sidecar and no run: applied plainly
    Run(runs["tta"]).model().save(bare)
    (tmp_path / "bare.classes.json").write_text(json.dumps(list(CLASSES)))
    assert not load_run(bare).tta_flip


@pytest.mark.parametrize("flag,flip", [([], True), (["--no-tta"], False)])
def test_cli_applies_the_runs_tta_unless_told_not_to(runs, pixels, expected, tmp_path, capsys, flag, flip):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(photos / f"{i:02d}.png")
    out = tmp_path / "results.json"
    assert cli.main([str(photos), "--run", str(runs["tta"]), "--no-detect", "--out", str(out), *flag]) == 0
    assert ("flip TTA" if flip else "no TTA") in capsys.readouterr().out.splitlines()[0]
    result = json.loads(out.read_text())
    assert result["tta_flip"] is flip
    got = np.array([[p["probabilities"][c] for c in CLASSES] for p in result["predictions"]])
    np.testing.assert_allclose(got, expected[flip], atol=1e-5)
    csv_out = tmp_path / "results.csv"
    assert cli.main([str(photos), "--run", str(runs["tta"]), "--no-detect", "--out", str(csv_out), *flag]) == 0
    header, row = csv_out.read_text().splitlines()[:2]
    assert row.split(",")[header.split(",").index("tta_flip")] == str(flip)
