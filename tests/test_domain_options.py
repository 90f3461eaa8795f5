"""Options for a balanced, colour target domain (issue 23): grey input inside the model, the logit-adjusted loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import TINY_OPTIONS
from PIL import Image

from fer_keras.config import make_config
from fer_keras.data.readers import ImageSet
from fer_keras.models.preprocessing import (
    adapt_input,
    equalize_histogram,
    equalized_input,
    has_equalized_input,
    has_grey_input,
)
from fer_keras.registry import build_model
from fer_keras.train.loop import resolve_color
from fer_keras.train.recipe import LogitAdjustedLoss, make_loss

# One plain CNN, one multi-output model with its own trainer, one residual network.
MODELS = ("vgg_lite", "esr", "resnet18")


def probs(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The class probabilities of any model of the zoo (ESR returns a dict or list of outputs)."""
    out = model(x, training=False)
    out = out["predictions"] if isinstance(out, dict) else out[0] if isinstance(out, list | tuple) else out
    return np.asarray(out)


def _twins(name: str, **inputs) -> tuple[keras.Model, keras.Model]:
    """``name`` built plain and with the input options ``inputs``, from the same random start."""
    options = TINY_OPTIONS.get(name, {})
    keras.utils.set_random_seed(0)
    plain = build_model(name, 32, 7, **options)
    keras.utils.set_random_seed(0)
    return plain, build_model(name, 32, 7, **inputs, **options)


@pytest.mark.parametrize("name", MODELS)
def test_grey_input_sees_colour_as_its_grey_and_keeps_layers(name, tmp_path):
    rgb, grey = _twins(name, color="grey")
    assert has_grey_input(grey) and not has_grey_input(rgb)
    assert [layer.name for layer in grey.layers] == [layer.name for layer in rgb.layers]
    assert grey.count_params() == rgb.count_params() and grey.get_layer("predictions") is not None
    colour = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    as_grey = np.repeat(colour.mean(axis=-1, keepdims=True), 3, axis=-1)

    np.testing.assert_allclose(probs(grey, colour), probs(rgb, as_grey), atol=1e-5)
    assert not np.allclose(probs(rgb, colour), probs(rgb, as_grey), atol=1e-5)  # the rgb model does see colour
    path = tmp_path / "grey.keras"
    grey.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert has_grey_input(loaded)
    np.testing.assert_allclose(probs(loaded, colour), probs(grey, colour), atol=1e-5)


def _reference_equalize(img: np.ndarray) -> np.ndarray:
    """OpenCV's equalizeHist of one 2-D image of levels 0-255, in numpy."""
    hist = np.bincount(img.astype(int).ravel(), minlength=256)
    cdf = np.cumsum(hist)
    low = cdf[cdf > 0].min()
    if low == img.size:
        return img.astype(float)
    return np.round((cdf - low) / (img.size - low) * 255)[img.astype(int)]


def test_equalize_histogram_is_opencvs_per_image_and_channel():
    rng = np.random.default_rng(1)
    batch = np.stack([
        rng.integers(60, 120, (20, 20, 3)),                        # low contrast: stretched to the full range
        np.full((20, 20, 3), 77),                                   # one level: left as it is
        np.where(rng.random((20, 20, 3)) < 0.3, 10, 200),          # two levels
        rng.integers(0, 256, (20, 20, 3)),
    ]).astype("float32")
    out = np.asarray(equalize_histogram(keras.ops.convert_to_tensor(batch)))
    assert out.shape == batch.shape
    for i in range(len(batch)):
        for c in range(3):
            expected = _reference_equalize(batch[i, ..., c])
            # Equal up to one level where float32 and float64 round a .5 differently; order is kept exactly.
            assert np.abs(out[i, ..., c] - expected).max() <= 1
            order = np.argsort(batch[i, ..., c].ravel(), kind="stable")
            assert np.all(np.diff(out[i, ..., c].ravel()[order]) >= 0)
    assert out[0].min() == 0 and out[0].max() == 255
    np.testing.assert_array_equal(out[1], batch[1])
    assert sorted(np.unique(out[2])) == [0.0, 255.0]


@pytest.mark.parametrize("name", MODELS)
def test_equalized_input_feeds_the_model_equalised_grey_and_saves(name, tmp_path):
    rgb, model = _twins(name, color="grey", equalize=True)
    assert has_grey_input(model) and has_equalized_input(model) and not has_equalized_input(rgb)
    assert [layer.name for layer in model.layers] == [layer.name for layer in rgb.layers]
    colour = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    grey = colour.mean(axis=-1, keepdims=True)
    fed = np.repeat(np.asarray(equalize_histogram(keras.ops.convert_to_tensor(grey))), 3, axis=-1)

    np.testing.assert_allclose(probs(model, colour), probs(rgb, fed), atol=1e-5)
    # Wrapping a trained checkpoint (evaluate.colour) is the same model as building with equalize.
    np.testing.assert_allclose(probs(equalized_input(adapt_input(rgb, grey=True)), colour), probs(model, colour),
                               atol=1e-5)
    path = tmp_path / "eq.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert has_equalized_input(loaded) and has_grey_input(loaded)
    np.testing.assert_allclose(probs(loaded, colour), probs(model, colour), atol=1e-5)


def test_equalized_input_wraps_a_grey_checkpoint_loaded_from_its_file(tmp_path):
    """A loaded model keeps its operations' names ('mean', 'repeat'); the new input operations must not clash."""
    keras.utils.set_random_seed(0)
    grey = build_model("vgg_lite", 32, 7, color="grey")
    grey.save(tmp_path / "grey.keras")
    loaded = keras.models.load_model(tmp_path / "grey.keras", safe_mode=True, compile=False)
    wrapped = equalized_input(loaded)
    assert has_grey_input(wrapped) and has_equalized_input(wrapped)
    wrapped.save(tmp_path / "eq.keras")
    again = keras.models.load_model(tmp_path / "eq.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(probs(again, x), probs(adapt_input(grey, grey=True, equalize=True), x), atol=1e-5)


def test_an_equalising_model_converts_to_every_tflite_format():
    from fer_keras.export.tflite import QUANTS, _interpreter_class, convert

    model = build_model("vgg_lite", 32, 7, color="grey", equalize=True)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    expected = np.asarray(model(x, training=False))
    for quant in QUANTS:
        interpreter = _interpreter_class()(model_content=convert(model, 32, quant, representative=lambda: list(x)))
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        for img, want in zip(x, expected, strict=True):
            interpreter.set_tensor(inp["index"], img[None])
            interpreter.invoke()
            got = interpreter.get_tensor(out["index"])[0].astype("float32")
            if out["dtype"] != np.float32:
                scale, zero = out["quantization"]
                got = (got - zero) * scale
            assert np.abs(got - want).max() <= (1e-4 if quant == "none" else 0.1), quant


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
    for change in ({"loss": "logit_adjusted"}, {"color": "grey"}, {"equalize": True}):
        with pytest.raises(Exception, match="recipe"):
            make_config(change)


def test_fast_run_with_auto_colour_equalised_input_and_logit_adjusted_loss(demo_root, tmp_path):
    from fer_keras.runs import read_json
    from fer_keras.train.loop import train_run

    cfg = make_config({"recipe": "fast", "model": "sequential_simple", "res": 32, "epochs": 1, "batch": 16,
                       "color": "auto", "equalize": True, "loss": "logit_adjusted", "limit_per_class": 6,
                       "tensorboard": False,
                       "data_root": str(demo_root), "out": str(tmp_path / "runs")})
    run = train_run(cfg, verbose=0)
    info = read_json(run / "run_info.json")
    assert (info["color"], info["color_reason"]) == ("grey", "auto: the training images are grey")  # demo: grey
    assert info["equalize"] is True
    best = keras.models.load_model(run / "best.keras", safe_mode=True, compile=False)
    assert has_grey_input(best) and has_equalized_input(best)
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
    assert [r["input"] for r in rows] == ["rgb", "grey", "rgb+eq", "grey+eq"]
    assert all(r["accuracy"] == 1.0 and r["prior_accuracy"] == 1.0 for r in rows[:2])
    assert all(r["tau"] == 0.3 and 0 <= r["prior_accuracy"] <= 1 for r in rows)
    assert "grey" in capsys.readouterr().out
    assert colour.main([str(run), "--data", str(tmp_path / "nowhere")]) == 2
