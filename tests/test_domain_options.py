"""Options for a balanced, colour target domain (issue 23): grey input inside the model, the logit-adjusted loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import TINY_OPTIONS
from PIL import Image

from fer_keras.config import make_config
from fer_keras.data.readers import ImageSet
from fer_keras.models.preprocessing import has_grey_input
from fer_keras.registry import build_model
from fer_keras.train.loop import resolve_color
from fer_keras.train.recipe import LogitAdjustedLoss, make_loss

# One plain CNN, one multi-output model with its own trainer, one residual network.
MODELS = ("vgg_lite", "esr", "resnet18")


@pytest.mark.parametrize("name", MODELS)
def test_grey_input_sees_colour_as_its_grey_and_keeps_layers(name, tmp_path):
    options = TINY_OPTIONS.get(name, {})
    keras.utils.set_random_seed(0)
    rgb = build_model(name, 32, 7, **options)
    keras.utils.set_random_seed(0)
    grey = build_model(name, 32, 7, color="grey", **options)
    assert has_grey_input(grey) and not has_grey_input(rgb)
    assert [layer.name for layer in grey.layers] == [layer.name for layer in rgb.layers]
    assert grey.count_params() == rgb.count_params() and grey.get_layer("predictions") is not None
    colour = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    as_grey = np.repeat(colour.mean(axis=-1, keepdims=True), 3, axis=-1)

    def probs(model, x):
        out = model(x, training=False)
        out = out["predictions"] if isinstance(out, dict) else out[0] if isinstance(out, list | tuple) else out
        return np.asarray(out)

    np.testing.assert_allclose(probs(grey, colour), probs(rgb, as_grey), atol=1e-5)
    assert not np.allclose(probs(rgb, colour), probs(rgb, as_grey), atol=1e-5)  # the rgb model does see colour
    path = tmp_path / "grey.keras"
    grey.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert has_grey_input(loaded)
    np.testing.assert_allclose(probs(loaded, colour), probs(grey, colour), atol=1e-5)


def test_unknown_colour_is_refused():
    with pytest.raises(ValueError, match="color must be"):
        build_model("vgg_lite", 32, 7, color="sepia")


def _image_set(tmp_path, colour: bool) -> ImageSet:
    paths = []
    rng = np.random.default_rng(0)
    for i in range(5):
        a = rng.integers(0, 255, (8, 8), dtype=np.uint8)
        arr = np.stack([a, a, a], -1)
        if colour and i == 3:  # one colour image among grey ones is enough
            arr[..., 0] = 255 - arr[..., 0]
        path = tmp_path / f"{i}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return ImageSet(name="t", class_names=("a",), labels=np.zeros(5, int), paths=paths)


def test_auto_colour_is_grey_exactly_for_grey_training_images(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "c").mkdir()
    assert resolve_color("auto", _image_set(tmp_path / "g", colour=False))[0] == "grey"
    assert resolve_color("auto", _image_set(tmp_path / "c", colour=True))[0] == "rgb"
    assert resolve_color("rgb", _image_set(tmp_path / "g", colour=False)) == ("rgb", "configured")


def test_logit_adjusted_loss_is_cross_entropy_of_prior_shifted_logits():
    counts = [80, 15, 5]
    cfg = make_config({"recipe": "fast", "loss": "logit_adjusted", "loss_tau": 1.0})
    loss = make_loss(cfg, counts)
    assert isinstance(loss, LogitAdjustedLoss)
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype="float32")
    y = np.eye(3, dtype="float32")[[1, 2]]
    shifted = np.log(p) + np.log(np.array(counts) / 100)
    soft = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(soft[[0, 1], [1, 2]]))
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-5)
    # tau 0 is the plain cross-entropy
    plain = make_loss(make_config({"recipe": "fast", "loss": "logit_adjusted", "loss_tau": 0.0}), counts)
    assert float(plain(y, p)) == pytest.approx(-np.mean(np.log(p[[0, 1], [1, 2]])), rel=1e-5)
    with pytest.raises(ValueError, match="training count"):
        make_loss(cfg, [3, 0, 1])


def test_protocol_runs_cannot_carry_the_domain_options():
    for change in ({"loss": "logit_adjusted"}, {"color": "grey"}):
        with pytest.raises(Exception, match="recipe"):
            make_config(change)


def test_fast_run_with_auto_colour_and_logit_adjusted_loss(demo_root, tmp_path):
    from fer_keras.runs import read_json
    from fer_keras.train.loop import train_run

    cfg = make_config({"recipe": "fast", "model": "sequential_simple", "res": 32, "epochs": 1, "batch": 16,
                       "color": "auto", "loss": "logit_adjusted", "limit_per_class": 6, "tensorboard": False,
                       "data_root": str(demo_root), "out": str(tmp_path / "runs")})
    run = train_run(cfg, verbose=0)
    info = read_json(run / "run_info.json")
    assert (info["color"], info["color_reason"]) == ("grey", "auto: the training images are grey")  # demo: grey
    assert has_grey_input(keras.models.load_model(run / "best.keras", safe_mode=True, compile=False))
    assert read_json(run / "metrics.json")["test"]["n"] > 0


def test_colour_check_scores_a_run_as_trained_and_with_grey_input(tmp_path, capsys):
    from stored_runs import LEVELS, stored_run, write_set

    from fer_keras.evaluate import colour
    from fer_keras.evaluate import prior as prior_correction
    from fer_keras.evaluate.prior import PriorCorrection

    order = sorted(LEVELS)
    run = stored_run(tmp_path / "run", order)
    prior_correction.save(run, PriorCorrection.from_counts({c: 5 for c in order}, tau=0.3))
    data = write_set(tmp_path / "set", per_class=3, seed=4)  # grey images: both inputs see the same pixels
    assert colour.main([str(run), "--data", str(data)]) == 0
    rows = colour.compare(run, data)
    assert [r["input"] for r in rows] == ["rgb", "grey"] and all(r["accuracy"] == 1.0 for r in rows)
    assert all(r["tau"] == 0.3 and r["prior_accuracy"] == 1.0 for r in rows)
    assert "grey" in capsys.readouterr().out
    assert colour.main([str(run), "--data", str(tmp_path / "nowhere")]) == 2
