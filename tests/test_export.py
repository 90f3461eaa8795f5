"""TFLite export of a tiny run: each format loads in the interpreter and agrees with Keras, on the run's own splits."""

import json

import keras
import numpy as np
import pytest
from stored_runs import stored_run, write_set

from fer_keras import registry
from fer_keras.config import make_config
from fer_keras.data.splits import splits_for
from fer_keras.export import run_export
from fer_keras.export.__main__ import main
from fer_keras.export.check import check_all
from fer_keras.export.run_export import export_run
from fer_keras.export.tflite import QUANTS, TFLiteModel, _check_layers_quantized, convert, float_ops
from fer_keras.runs import Run
from fer_keras.train.loop import train_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    # Not the demo faces: one epoch on them predicts one class for every image, which makes
    # argmax agreement trivially perfect. Brightness classes give a varied, confident model.
    data = tmp_path_factory.mktemp("data")
    write_set(data / "bright" / "train", 40, seed=1)
    write_set(data / "bright" / "test", 20, seed=2)
    cfg = make_config({"model": "sequential_simple", "res": 32, "epochs": 1, "batch": 8, "lr": 1e-3,
                       "tensorboard": False, "crossdomain": None, "dataset": "bright", "data_root": str(data),
                       "out": str(tmp_path_factory.mktemp("runs"))})
    return train_run(cfg, verbose=0)


@pytest.mark.parametrize("quant, min_agreement, max_diff", [
    ("none", 1.0, 1e-4), ("float16", 0.97, 2e-2), ("int8", 0.85, 0.2),
    ("int8_float_softmax", 0.85, 0.2)])
def test_export_each_format_loads_and_agrees(tiny_run, quant, min_agreement, max_diff, capsys):
    code = main([tiny_run.name, "--runs", str(tiny_run.parent), "--quant", quant, "--representative", "32"])
    assert code == 0, capsys.readouterr().err
    tag = {"none": "float32"}.get(quant, quant)
    result = json.loads((tiny_run / f"export_{tag}.json").read_text())
    assert result["n_test"] == 3 * 20 and result["test_split"] == "test"  # every demo test image once
    assert result["keras_predicted_classes"] >= 2  # argmax agreement is not trivial
    assert result["argmax_agreement"] >= min_agreement
    assert result["max_abs_prob_diff"] <= max_diff
    assert abs(result["accuracy_change"]) <= 1 - min_agreement + 1e-9
    assert result["input_output_types"] == ["float32", "float32"]
    assert result["size_bytes"] == (tiny_run / f"model_{tag}.tflite").stat().st_size > 0
    assert result["latency_single_image"]["tflite"]["median_ms"] > 0
    lite = TFLiteModel((tiny_run / f"model_{tag}.tflite").read_bytes())
    probs = lite(np.zeros((3, 32, 32, 3), np.float32))
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1, atol=0.02)


def test_int8_file_is_smaller_than_float32(tiny_run):
    for quant, tag in (("none", "float32"), ("int8", "int8")):
        if not (tiny_run / f"model_{tag}.tflite").is_file():  # when run alone
            main([str(tiny_run), "--quant", quant, "--representative", "16"])
    assert (tiny_run / "model_int8.tflite").stat().st_size < (tiny_run / "model_float32.tflite").stat().st_size / 3


def test_fold_run_is_calibrated_on_its_train_split_and_checked_on_its_test_split(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_set(data / "bright" / "train", 12, seed=1)
    write_set(data / "bright" / "test", 8, seed=2)
    run = stored_run(tmp_path / "runs" / "fold_run", ["sad", "angry", "happy"], dataset="bright",
                     data_root=str(data), crossdomain=None, folds=5, fold=2)
    splits = splits_for(Run(run).config())
    seen = {}

    def recording(key, fn):
        def wrapped(images, *args, **kwargs):
            seen.setdefault(key, images)
            return fn(images, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(run_export, "representative_sample", recording("calibration", run_export.representative_sample))
    loaded = []  # every image set export loads (the calibration sample goes through the same loader)
    evaluate = run_export.eval_dataset
    monkeypatch.setattr(run_export, "eval_dataset",
                        lambda images, *a, **k: loaded.append(images) or evaluate(images, *a, **k))
    result = export_run(run, "int8", representative=8, latency_repeats=3)
    assert seen["calibration"].paths == splits.train.paths
    assert [images.paths for images in loaded][-1] == splits.test.paths
    assert result["n_test"] == len(splits.test) == 3 * 20 // 5
    assert not set(seen["calibration"].paths) & set(splits.test.paths)
    assert result["test_split"] == "test (fold 2 of 5)"
    assert result["keras_accuracy"] == 1.0  # scored in the model's own class order (sad, angry, happy)
    # A model without input equalisation is full-integer, and says so.
    assert result["float_ops"] == [] and result["conversion"].startswith("full-integer int8"), result["conversion"]


def test_unknown_run_fails_with_where_it_looked(tmp_path, capsys):
    assert main(["no_such_run", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no_such_run" in err and str(tmp_path) in err


def _broken(input_shape, num_classes, *, pretrain, pooling, weights_dir):
    raise RuntimeError("this builder is broken on purpose")


def test_every_registered_model_converts_or_says_why(monkeypatch, tmp_path):
    spec = registry.ModelSpec(name="broken_for_test", builder=_broken, family="test", paper_name="-",
                              description="test-only")
    monkeypatch.setitem(registry._REGISTRY, "broken_for_test", spec)
    big = registry.ModelSpec(name="big_only_for_test", builder=_broken, family="test", paper_name="-",
                             description="test-only", min_resolution=64)
    monkeypatch.setitem(registry._REGISTRY, "big_only_for_test", big)
    monkeypatch.setattr(registry, "list_models", lambda: ["big_only_for_test", "broken_for_test",
                                                         "sequential_simple"])
    rows = {r["model"]: r for r in check_all(res=32)}
    assert rows["sequential_simple"]["convertible"] is True
    assert all(f["ok"] for f in rows["sequential_simple"]["formats"].values())
    assert rows["broken_for_test"]["convertible"] is False and "broken on purpose" in rows["broken_for_test"]["reason"]
    big_row = rows["big_only_for_test"]  # checked at its own smallest size instead
    assert big_row["res"] == 64 and "32 px" in big_row["note"] and "build failed" in big_row["reason"]
    keras.backend.clear_session()


#: Real models of the zoo, kept few for time: plain conv + BN (vgg_lite, in every format) and residual blocks
#: (resnet18); the slow test below converts the whole zoo (depthwise keras.applications backbones, ESR's
#: multi-output ensemble, ...).
REAL_SUBSET = {"vgg_lite": QUANTS, "resnet18": ("none",)}


@pytest.mark.parametrize("name", list(REAL_SUBSET))
def test_a_representative_subset_of_the_real_zoo_converts_and_computes_what_keras_does(name):
    """``make export-check`` on real registered models (random weights, 32 px): each converts to every
    format tried and the interpreter's probabilities match Keras'."""
    (row,) = check_all([name], res=32, quants=REAL_SUBSET[name])
    assert row["convertible"] is True, row["reason"]
    for quant, result in row["formats"].items():
        assert result["ok"] and result["max_abs_prob_diff"] <= (1e-4 if quant == "none" else 0.1), (quant, result)


@pytest.mark.slow  # minutes: every model, every format; the fast subset above runs by default
def test_every_real_registered_model_converts_or_says_why():
    """What ``make export-check`` promises, on the whole real zoo at 48 px (or a model's smallest size): each
    model converts and computes what Keras does, or its row gives the converter's reason."""
    rows = check_all(res=48)
    assert [r["model"] for r in rows] == registry.list_models()
    for r in rows:
        if r["convertible"]:
            assert r["formats"]["none"]["max_abs_prob_diff"] <= 1e-4, r
        else:
            assert r["reason"], r


def test_all_models_cli_writes_a_table(tmp_path):
    assert main(["--all-models", "--models", "sequential_simple", "--res", "32", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "convertible.md").read_text()
    assert "| sequential_simple | 32 | yes | yes | yes | yes |" in md
    assert json.loads((tmp_path / "convertible.json").read_text())[0]["convertible"] is True


def _low_contrast_faces(n: int, res: int, seed: int) -> np.ndarray:
    """Smooth grey images squeezed into 20-60 of the 256 levels: histogram equalisation spreads them over all."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:res, :res] / res
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(-1, 1, 3)
        img = a * xx + b * yy + c * np.sin(6 * xx * yy) + rng.normal(0, 0.1, (res, res))
        img = (img - img.min()) / np.ptp(img) * rng.uniform(20, 60) + rng.uniform(40, 160)
        out.append(np.repeat(np.round(img)[..., None], 3, axis=-1))
    return np.asarray(out, np.float32)


def test_int8_keeps_a_models_histogram_equalisation_exact():
    """int8 quantized the equalisation's pixel counts and lookup to 8 bits (the built-in model lost 3.5 points of
    agreement with its float self); now it runs in float32 and feeds the int8 layers what Keras feeds them."""
    res = 32
    keras.utils.set_random_seed(0)
    model = registry.build_model("sequential_simple", res, 3, color="grey", equalize=True)
    # The model cut where its own layers begin (after mean, equalisation and repeat), read through a 1x1
    # identity convolution: int8 then has a quantized layer after the equalisation, and the file's output is
    # the equalised image (0-255 levels, which int8 holds exactly at scale 1).
    ops = list(model.operations)
    first_layer = next(i for i, op in enumerate(ops) if isinstance(op, keras.layers.Layer)
                       and not isinstance(op, keras.layers.InputLayer))
    adapted = ops[first_layer - 1].output
    identity = keras.layers.Conv2D(3, 1, use_bias=False, name="identity")
    probe = keras.Model(model.inputs[0], identity(adapted))
    identity.set_weights([np.eye(3, dtype="float32")[None, None]])
    calibration, x = _low_contrast_faces(16, res, seed=1), _low_contrast_faces(16, res, seed=2)
    expected = np.asarray(probe(x))
    assert expected.min() == 0 and expected.max() == 255  # the equalisation spread every image over 0-255
    content = convert(probe, res, "int8", lambda: iter(calibration))
    got = TFLiteModel(content, threads=1)(x)
    assert np.abs(got - expected).max() <= 1, np.abs(got - expected).max()
    assert np.mean(got != expected) < 0.01, np.mean(got != expected)
    floats = float_ops(content)  # the equalisation in float, the layer after it int8: not full-integer
    assert {"ONE_HOT", "BATCH_MATMUL", "CUMSUM", "MEAN"} <= set(floats) and "CONV_2D" not in floats, floats


def test_int8_refuses_a_file_whose_layers_stayed_float():
    """The float island admits float builtins; a model layer falling back to them must not pass as int8."""
    model = registry.build_model("sequential_simple", 16, 3)
    content = convert(model, 16, "none")  # every layer in float: what a silent fallback would look like
    with pytest.raises(ValueError, match="left model layers in float32: CONV_2D"):
        _check_layers_quantized(content, softmax=False)


def test_conversion_note_says_what_the_file_computes_in_float():
    note = run_export._conversion_note
    assert note("int8", 8).startswith("full-integer int8")
    equalised = note("int8", 8, ["MEAN", "ONE_HOT", "CUMSUM"])
    assert equalised.startswith("int8 except the input's histogram equalisation (3 ops")
    assert "not full-integer" in note("int8", 8, ["ONE_HOT"])
    assert note("int8", 8, ["ROUND", "ROUND"]).startswith("int8 except 2 ops in float32 (ROUND)")
    assert note("int8_float_softmax", 8, ["SOFTMAX"]).startswith("int8 except a float softmax")
    assert "not full-integer" not in note("int8_float_softmax", 8, ["SOFTMAX"])
