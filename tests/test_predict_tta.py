"""The predictor applies a run's test-time augmentation exactly as evaluation does.

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
from fer_keras.evaluate.tta import NAMES, NO_TTA, TTA
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


def save_run(folder, model: keras.Model, tta: TTA):
    run = Run(folder)
    run.dir.mkdir(parents=True)
    model.save(run.model_file)
    write_json(run.classes_file, list(CLASSES))
    values = {"recipe": "fast", **tta.settings()} if tta != NO_TTA else {}
    save_config(make_config({"model": "sequential_simple", "res": RES, **values}), run.config_file)
    return run.dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    model, root = lopsided_model(), tmp_path_factory.mktemp("runs")
    return {"tta": save_run(root / "tta", model, TTA(flip=True, zoom=True)),
            "plain": save_run(root / "plain", model, NO_TTA)}


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (10, RES, RES, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def expected(runs, pixels) -> dict[str, np.ndarray]:
    """What evaluation computes for these images under each TTA (by name)."""
    model = Run(runs["tta"]).model()
    images = ImageSet(name="t", class_names=CLASSES, labels=np.arange(len(pixels)) % 3, pixels=pixels)
    probs = {name: predict_probs(model, images, RES, model_classes=CLASSES, pipeline="tfdata", tta=TTA.named(name))
             for name in NAMES}
    for a in NAMES:  # the checks below can tell them apart
        assert all(np.abs(probs[a] - probs[b]).max() > 1e-3 for b in NAMES if b != a)
    return probs


def predicted(predictor, pixels) -> np.ndarray:
    preds = predictor.predict(pixels, batch_size=4)
    return np.array([list(p.probabilities.values()) for p in preds])


@pytest.mark.parametrize("run,override,name", [
    ("tta", None, "flip+zoom"), ("plain", None, "none"),  # as each run was evaluated
    ("tta", "none", "none"), ("plain", "flip", "flip"), ("tta", "zoom", "zoom"),  # the caller's choice wins
])
def test_predictions_equal_the_evaluators(runs, pixels, expected, run, override, name):
    predictor = load_run(runs[run], tta=None if override is None else TTA.named(override))
    assert predictor.tta.name == name
    np.testing.assert_allclose(predicted(predictor, pixels), expected[name], atol=1e-5)


def test_a_runs_best_keras_reads_its_config_and_a_saved_copy_keeps_it(runs, pixels, expected, tmp_path):
    assert load_run(Run(runs["tta"]).model_file).tta == TTA(flip=True, zoom=True)
    for run, name in (("tta", "flip+zoom"), ("plain", "none")):
        copy = load_run(load_run(runs[run]).save(tmp_path / run / "exported.keras"))
        assert copy.tta.name == name
        np.testing.assert_allclose(predicted(copy, pixels), expected[name], atol=1e-5)
    old = tmp_path / "old" / "exported.keras"  # a copy saved before zoom views existed: {"tta_flip": true}
    load_run(runs["tta"]).save(old)
    old.with_suffix(".predictor.json").write_text(json.dumps({"tta_flip": True}))
    assert load_run(old).tta == TTA(flip=True)
    bare = tmp_path / "bare.keras"  # a model file with no sidecar and no run: applied plainly
    Run(runs["tta"]).model().save(bare)
    (tmp_path / "bare.classes.json").write_text(json.dumps(list(CLASSES)))
    assert load_run(bare).tta == NO_TTA


@pytest.mark.parametrize("flag,name", [([], "flip+zoom"), (["--no-tta"], "none"), (["--tta", "flip"], "flip")])
def test_cli_applies_the_runs_tta_unless_told_not_to(runs, pixels, expected, tmp_path, capsys, flag, name):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(photos / f"{i:02d}.png")
    out = tmp_path / "results.json"
    assert cli.main([str(photos), "--run", str(runs["tta"]), "--no-detect", "--out", str(out), *flag]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(f"TTA {name})")
    result = json.loads(out.read_text())
    assert result["tta"] == name
    got = np.array([[p["probabilities"][c] for c in CLASSES] for p in result["predictions"]])
    np.testing.assert_allclose(got, expected[name], atol=1e-5)
    csv_out = tmp_path / "results.csv"
    assert cli.main([str(photos), "--run", str(runs["tta"]), "--no-detect", "--out", str(csv_out), *flag]) == 0
    header, row = csv_out.read_text().splitlines()[:2]
    assert row.split(",")[header.split(",").index("tta")] == name
