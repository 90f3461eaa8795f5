"""The built-in model that ships with the package, and the command that makes one from a run."""

from __future__ import annotations

import hashlib
import json
import zipfile

import keras
import numpy as np
from PIL import Image
from skimage import data
from stored_runs import write_set

from fer_keras import load_run
from fer_keras.config import make_config, save_config
from fer_keras.labels import CANONICAL_CLASSES
from fer_keras.models.features import feature_extractor
from fer_keras.predict.builtin import ship
from fer_keras.predict.predictor import BUILTIN_MODEL_DIR
from fer_keras.registry import build_model
from fer_keras.runs import Run, write_json


def test_the_shipped_model_loads_with_its_class_order_and_preprocessing():
    shipped = Run(BUILTIN_MODEL_DIR)
    assert shipped.classes() == list(CANONICAL_CLASSES)
    model = keras.models.load_model(shipped.model_file, safe_mode=True)  # plain Keras: portable
    assert model.layers[1].name == f"preprocess_{shipped.run_info()['preprocessing']}"
    assert all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers)
    assert model.output_shape == (None, len(CANONICAL_CLASSES))
    assert len(feature_extractor(model).output_shape) == 2  # shipped with the 'features' mark
    cfg, metrics = shipped.config(), shipped.metrics()
    assert (cfg.model, cfg.res, cfg.dataset, cfg.recipe) == ("vgg_lite", 48, "fer2013", "fast")
    assert metrics["test"]["n"] > 7000 and metrics["test"]["accuracy"] > 0.6  # what the README's card quotes


def test_the_readme_card_is_the_shipped_files_card():
    """Every figure line of card.md (written by the shipping step from its evaluation of the shipped file)
    stands in the README's model card as it is, and the card names the file that ships."""
    from pathlib import Path

    from fer_keras.predict.card import CARD_JSON, CARD_MD, card_markdown

    shipped = Run(BUILTIN_MODEL_DIR)
    card = json.loads((shipped.dir / CARD_JSON).read_text())
    assert card["model_sha256"] == hashlib.sha256(shipped.model_file.read_bytes()).hexdigest()
    assert (shipped.dir / CARD_MD).read_text() == card_markdown(card)
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    lines = [line for line in card_markdown(card).splitlines() if line.startswith("- ")]
    assert lines and all(" ".join(line.split()) in readme for line in lines)


def test_the_shipped_model_finds_the_astronauts_face(tmp_path):
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    faces = load_run().predict(tmp_path / "astronaut.png", detect_faces=True)
    assert len(faces) == 1 and faces[0].label in CANONICAL_CLASSES
    assert abs(sum(faces[0].probabilities.values()) - 1) < 1e-3


def test_ship_writes_a_float32_copy_without_optimizer(tmp_path):
    run = Run(tmp_path / "run")
    run.dir.mkdir()
    write_set(tmp_path / "d" / "train", 10, seed=1)  # shipping scores the written file on the run's splits
    write_set(tmp_path / "d" / "test", 3, seed=2)
    cfg = make_config({"model": "sequential_simple", "res": 32, "mixed_precision": "mixed_bfloat16",
                       "data_root": str(tmp_path), "dataset": "d"})
    save_config(cfg, run.config_file)
    classes = ["sad", "angry", "happy"]
    write_json(run.classes_file, classes)
    write_json(run.metrics_file, {"test": {"accuracy": 0.5}})
    write_json(run.run_info_file, {"preprocessing": "none"})
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trained = build_model("sequential_simple", 32, len(classes))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    trained.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    trained.fit(x, keras.utils.to_categorical(np.arange(8) % 3, 3), epochs=1, verbose=0)
    trained.save(run.model_file)

    dest = ship(run.dir, tmp_path / "builtin")
    shipped = Run(dest)
    assert shipped.classes() == classes and json.loads(shipped.metrics_file.read_text())["test"]["accuracy"] == 0.5
    model = shipped.model()
    assert all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(trained(x), dtype="float32"), atol=0.05)
    with zipfile.ZipFile(shipped.model_file) as archive:
        weights = archive.read("model.weights.h5")
    assert b"optimizer" not in weights
