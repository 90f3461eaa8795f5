"""Legacy runs are scored on the images they were trained on, and their augmentation survives resume."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from fer_keras.config import make_config, save_config
from fer_keras.data.legacy import load_images, make_legacy_dataset
from fer_keras.data.pipeline import eval_dataset
from fer_keras.data.readers import read_class_folders
from fer_keras.evaluate.crossdomain import evaluate_crossdomain
from fer_keras.evaluate.evaluator import predict_probs
from fer_keras.runs import CLASSES_FILE, MODEL_FILE

pytest.importorskip("keras.src.legacy.preprocessing.image")

RES = 20


def picture(kind: str) -> np.ndarray:
    """40 px: one-pixel stripes, white on even or odd columns, or grey ones (112 and 143, not blank).
    A nearest 2x reduction keeps one stripe phase (all black, all white or all 143), an
    antialiased one averages them to grey."""
    img = np.full((2 * RES, 2 * RES), 112 if kind == "grey" else 0, np.uint8)
    img[:, 1 if kind == "odd" else 0::2] = 143 if kind == "grey" else 255
    return img


@pytest.fixture
def striped(tmp_path):
    """Dark, grey and bright classes after a nearest resize; all grey after an antialiased one."""
    root = tmp_path / "striped"
    for cls, kind in (("angry", "even"), ("happy", "grey"), ("sad", "odd")):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(picture(kind)).save(root / cls / f"{i}.png")
    return root


def brightness_model() -> keras.Model:
    """Class k for a mean pixel near 0, 127.5 or 255 (logits -(m - c_k)^2 / 1000 up to a common term):
    margins of 12 or more either way, so no rounding decides a prediction."""
    inp = keras.Input((RES, RES, 3))
    dense = keras.layers.Dense(3)
    model = keras.Model(inp, keras.layers.Softmax()(dense(keras.layers.GlobalAveragePooling2D()(inp))))
    centres = np.array([0, 127.5, 255])
    dense.set_weights([np.tile(2 * centres / 1000 / 3, (3, 1)).astype(np.float32),
                       (-centres**2 / 1000).astype(np.float32)])
    return model


def _pixels(ds) -> np.ndarray:
    return np.concatenate([x.numpy() for x, _ in ds])


def test_legacy_eval_pixels_are_the_legacy_loaders(striped):
    images = read_class_folders(striped)
    legacy = _pixels(eval_dataset(images, RES, 4, pipeline="legacy"))
    np.testing.assert_array_equal(legacy, load_images(images, np.arange(len(images)), RES))
    assert all(img.std() == 0 for img in legacy)  # nearest: one stripe phase, a flat image
    assert sorted({float(img.mean()) for img in legacy}) == [0.0, 112.0, 255.0]
    tfdata = _pixels(eval_dataset(images, RES, 4, pipeline="tfdata"))
    assert np.abs(tfdata[:, 2:-2, 2:-2] - 127.5).max() < 2  # antialiased: all grey inside
    with pytest.raises(ValueError, match="pipeline"):
        eval_dataset(images, RES, 4, pipeline="pil")


def test_predictions_follow_the_pipeline(striped):
    images = read_class_folders(striped)
    model = brightness_model()
    probs = {p: predict_probs(model, images, RES, model_classes=images.class_names, pipeline=p)
             for p in ("legacy", "tfdata")}
    assert probs["legacy"].argmax(1).tolist() == images.labels.tolist()
    assert probs["tfdata"].argmax(1).tolist() == [1] * len(images)


def test_crossdomain_scores_a_legacy_run_with_the_legacy_loader(striped, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_config(make_config({"pipeline": "legacy", "res": RES, "crossdomain": None}), run / "config.yaml")
    (run / CLASSES_FILE).write_text(json.dumps(["angry", "happy", "sad"]))
    brightness_model().save(run / MODEL_FILE)
    m = evaluate_crossdomain(run, striped)
    assert m["accuracy"] == 1.0  # 1/3 when scored on antialiased resizes


def test_legacy_draws_are_keyed_by_seed_phase_and_epoch(striped):
    images = read_class_folders(striped)
    legacy = lambda **kw: _pixels(make_legacy_dataset(images, RES, 4, training=True, seed=3, **kw))  # noqa: E731
    fresh = np.split(legacy(epochs=3), 3)  # epochs 0, 1, 2 of phase 0
    assert not np.array_equal(fresh[1], fresh[2])
    # A run resumed at epoch 2 starts its stream there, and sees what an uninterrupted one saw.
    np.testing.assert_array_equal(legacy(first_epoch=2), fresh[2])
    assert not np.array_equal(legacy(phase=1), fresh[0])  # a second phase does not replay the first
