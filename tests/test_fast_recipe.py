"""The fast recipe (issue 14) and the speed options: each one changes what it should, and only that."""

import csv
import math

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from fer_keras.bench.report import markdown
from fer_keras.bench.train_speed import add_ratios, train_speed
from fer_keras.config import ConfigError, load_config, make_config
from fer_keras.data import augment
from fer_keras.data.pipeline import eval_dataset
from fer_keras.data.readers import ImageSet
from fer_keras.data.splits import splits_for
from fer_keras.evaluate.evaluator import evaluate_set, predict_probs
from fer_keras.evaluate.tta import NAMES, TTA, ZOOMS, zoomed
from fer_keras.registry import build_model
from fer_keras.report.collect import collect, learning_curves
from fer_keras.runs import read_json
from fer_keras.train.batchnorm import read_statistics, recompute_statistics, write_statistics
from fer_keras.train.callbacks import protocol_callbacks
from fer_keras.train.cli import overrides_from, parser
from fer_keras.train.loop import compile_model, statistics_batches, train_run
from fer_keras.train.recipe import dtype_policy, learning_rate

FAST = {"recipe": "fast", "optimizer": "adamw", "weight_decay": 0.05, "lr": 1e-2, "lr_schedule": "cosine",
        "warmup_epochs": 1, "epochs": 5, "reduce_lr_patience": None, "early_stopping_patience": None,
        "label_smoothing": 0.1, "ema": True, "tta_flip": True, "tensorboard": False}


def _tiny_model(res: int = 8) -> keras.Model:
    inputs = keras.Input((res, res, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=True)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


# --- configuration ---------------------------------------------------------------------------------

def test_cosine_with_reduce_lr_on_plateau_is_refused():
    with pytest.raises(ConfigError, match="set reduce_lr_patience to null"):
        make_config({**FAST, "reduce_lr_patience": 10})


@pytest.mark.parametrize("change,message", [
    ({"optimizer": "adam"}, "weight_decay 0.05 needs optimizer 'adamw'"),
    ({"lr_schedule": "plateau", "reduce_lr_patience": 10}, "warmup_epochs needs lr_schedule 'cosine'"),
    ({"warmup_epochs": 5}, "must be below epochs"),
    ({"random_erasing": 0.5, "pipeline": "legacy"}, "random_erasing needs pipeline 'tfdata'"),
])
def test_inconsistent_recipe_options_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        make_config({**FAST, **change})


def test_protocol_runs_cannot_carry_the_recipes_options():
    with pytest.raises(ConfigError, match="label_smoothing, tta_flip are not the protocol's; set recipe to 'fast'"):
        make_config({"label_smoothing": 0.1, "tta_flip": True})
    with pytest.raises(ConfigError, match="random_erasing are not the protocol's"):
        make_config({"random_erasing": 0.5})
    # speed options change no result: protocol runs may use them
    cfg = make_config({"mixed_precision": "mixed_bfloat16", "jit_compile": True, "steps_per_execution": 4})
    assert cfg.recipe == "protocol" and not cfg.resolved_run_id().endswith("_fast")


def test_batchnorm_recompute_is_a_flag_of_the_fast_recipe_without_ema():
    cfg = make_config(overrides_from(parser().parse_args(["--recipe", "fast", "--batchnorm-recompute", "true"])))
    assert cfg.batchnorm_recompute and not cfg.ema
    with pytest.raises(ConfigError, match="batchnorm_recompute are not the protocol's; set recipe to 'fast'"):
        make_config({"batchnorm_recompute": True})
    for mode in ("recompute", "raw"):  # the EMA recomputes its own statistics, or was asked not to
        with pytest.raises(ConfigError, match="batchnorm_recompute with ema: .* set ema to false"):
            make_config({**FAST, "batchnorm_recompute": True, "ema_batchnorm": mode})


def test_fast_yaml_is_the_labelled_fast_recipe():
    cfg = load_config("configs/fast.yaml", {"dataset": "fer2013"})
    assert cfg.recipe == "fast" and cfg.resolved_run_id() == "vgg_lite_48_fer2013_none_scratch_s42_fast"
    assert (cfg.optimizer, cfg.lr_schedule, cfg.reduce_lr_patience, cfg.early_stopping_patience) == (
        "adamw", "cosine", None, None)
    assert cfg.tta_flip and cfg.ema and cfg.label_smoothing > 0 and cfg.batch > 32


# --- what compile gets -----------------------------------------------------------------------------

def test_adamw_decays_kernels_but_not_biases_or_norms():
    model = _tiny_model()
    compile_model(model, 1e-3, make_config(FAST), steps_per_epoch=10, epochs=5)
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.AdamW) and opt.weight_decay == pytest.approx(0.05)
    decayed = {w.path: opt._use_weight_decay(w) for w in model.trainable_weights}
    assert {p for p, on in decayed.items() if on} == {w.path for w in model.trainable_weights if len(w.shape) > 1}
    protocol = _tiny_model()
    compile_model(protocol, 1e-4)
    assert type(protocol.optimizer) is keras.optimizers.Adam and not protocol.optimizer.use_ema
    assert float(protocol.optimizer.learning_rate) == pytest.approx(1e-4)


def test_cosine_schedule_warms_up_peaks_and_ends_at_min_lr():
    cfg = make_config({**FAST, "min_lr": 1e-4})
    lr = learning_rate(cfg, steps_per_epoch=10, epochs=5)  # 10 warm-up steps, 40 decay steps
    at = {step: float(lr(step)) for step in (0, 5, 10, 30, 50, 60)}
    assert at[0] == 0 and at[5] == pytest.approx(5e-3) and at[10] == pytest.approx(1e-2)
    assert at[30] == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi * 20 / 40)), rel=1e-5)
    assert at[50] == pytest.approx(1e-4) and at[60] == pytest.approx(1e-4)
    assert learning_rate(make_config({}), 10, 5) == pytest.approx(1e-4)  # plateau: a float its callback lowers


def test_label_smoothing_reaches_the_loss():
    model = _tiny_model()
    compile_model(model, 1e-3, make_config(FAST), steps_per_epoch=1, epochs=2)
    y, p = np.array([[1.0, 0.0, 0.0]]), np.array([[0.7, 0.2, 0.1]])
    smoothed = y * 0.9 + 0.1 / 3
    assert float(model.loss(y, p)) == pytest.approx(-np.sum(smoothed * np.log(p)), rel=1e-5)


def test_ema_weights_are_validated_checkpointed_and_left_in_the_model(tmp_path):
    keras.utils.set_random_seed(0)
    cfg = make_config({**FAST, "epochs": 3, "warmup_epochs": 0, "ema_momentum": 0.5})
    model = _tiny_model()
    compile_model(model, 1e-2, cfg, steps_per_epoch=4, epochs=3)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (32, 8, 8, 3)).astype("float32"), np.eye(3)[rng.integers(0, 3, 32)]
    seen: dict[str, list] = {"raw": [], "ema": []}

    def last_batch(batch, logs):
        if batch == 3:  # before the epoch-end swap: model = raw weights, optimizer slots = their average
            seen["raw"].append([np.array(w) for w in model.trainable_weights])
            seen["ema"].append([np.array(v) for v in model.optimizer._model_variables_moving_average])

    callbacks = protocol_callbacks(cfg, tmp_path, "main")
    model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), verbose=0,
              callbacks=[*callbacks, keras.callbacks.LambdaCallback(on_train_batch_end=last_batch)])
    final = [np.array(w) for w in model.trainable_weights]
    assert all(np.allclose(f, e, atol=1e-6) for f, e in zip(final, seen["ema"][-1], strict=True))
    assert not all(np.allclose(f, r, atol=1e-6) for f, r in zip(final, seen["raw"][-1], strict=True))
    best_epoch = read_json(tmp_path / "best.json")["epoch"]
    saved = keras.models.load_model(tmp_path / "best.keras", compile=False).trainable_weights
    assert all(np.allclose(np.array(s), e, atol=1e-6) for s, e in zip(saved, seen["ema"][best_epoch - 1], strict=True))


def test_recompute_statistics_is_the_mean_of_the_batch_statistics():
    inputs = keras.Input((2, 2, 1))
    bn = keras.layers.BatchNormalization(momentum=0.9)
    model = keras.Model(inputs, bn(inputs))
    weights = [np.array(w) for w in bn.weights if w.trainable]
    batches = [np.full((2, 2, 2, 1), 1.0), np.array([0.0, 4.0]).reshape(2, 1, 1, 1) * np.ones((2, 2, 2, 1))]
    assert recompute_statistics(model, batches) == 2
    # batch means 1 and 2 -> 1.5; batch variances 0 and 4 -> 2 (each batch weighs the same)
    assert float(bn.moving_mean.numpy()[0]) == pytest.approx(1.5)
    assert float(bn.moving_variance.numpy()[0]) == pytest.approx(2.0)
    assert bn.momentum == 0.9 and all(np.array_equal(w, np.array(v)) for w, v in
                                      zip(weights, [w for w in bn.weights if w.trainable], strict=True))


def test_recompute_statistics_leaves_frozen_layers_alone():
    # Keras runs a frozen BatchNorm in inference mode: reset, it would keep mean 0 and variance 1.
    inputs = keras.Input((2, 2, 1))
    frozen, free = keras.layers.BatchNormalization(), keras.layers.BatchNormalization()
    model = keras.Model(inputs, free(frozen(inputs)))
    frozen.trainable = False
    frozen.moving_mean.assign([3.0])
    frozen.moving_variance.assign([5.0])
    recompute_statistics(model, [np.full((2, 2, 2, 1), 7.0)])
    assert float(frozen.moving_mean.numpy()[0]) == 3.0 and float(frozen.moving_variance.numpy()[0]) == 5.0
    assert float(free.moving_mean.numpy()[0]) == pytest.approx((7.0 - 3.0) / np.sqrt(5.0 + 1e-3), rel=1e-4)


@pytest.mark.parametrize("mode", ["recompute", "raw"])
def test_ema_model_is_saved_with_batchnorm_statistics_of_its_own_weights(tmp_path, mode):
    keras.utils.set_random_seed(0)
    cfg = make_config({**FAST, "epochs": 2, "warmup_epochs": 0, "ema_momentum": 0.5, "ema_batchnorm": mode})
    model = _tiny_model()
    compile_model(model, 1e-2, cfg, steps_per_epoch=4, epochs=2)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (32, 8, 8, 3)).astype("float32"), np.eye(3)[rng.integers(0, 3, 32)]
    sample = [x[:16], x[16:]]
    callbacks = protocol_callbacks(cfg, tmp_path, "main", bn_batches=lambda: sample)
    model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0, callbacks=callbacks)
    saved = keras.models.load_model(tmp_path / "best.keras", compile=False)
    stored = read_statistics(saved)
    recompute_statistics(saved, sample)
    matches = all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(stored, read_statistics(saved),
                                                                           strict=True))
    assert matches == (mode == "recompute")


class MovingStatistics(keras.callbacks.Callback):
    """The moving averages each epoch's training left, read before its validation."""

    def __init__(self):
        super().__init__()
        self.before_validation: list[list[np.ndarray]] = []

    def on_train_batch_end(self, batch, logs=None):
        self.last = read_statistics(self.model)

    def on_test_begin(self, logs=None):
        self.before_validation.append(self.last)


def _relative_gap(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y) / (np.abs(y) + 1e-3))) for x, y in zip(a, b, strict=True))


def test_batchnorm_recompute_validates_saves_and_evaluates_the_recomputed_statistics(bright, tmp_path):
    cfg = make_config({"recipe": "fast", "batchnorm_recompute": True, "model": "vgg_lite", "res": 32,
                       "dataset": "bright", "data_root": str(bright), "crossdomain": None, "epochs": 2, "batch": 8,
                       "tensorboard": False, "out": str(tmp_path)})
    moving = MovingStatistics()
    run = train_run(cfg, verbose=0, extra_callbacks=[moving])
    epoch = read_json(run / "best.json")["epoch"]
    saved = keras.models.load_model(run / "best.keras")  # compiled as trained: its loss is the logged val_loss
    stored = read_statistics(saved)
    splits = splits_for(cfg)
    recompute_statistics(saved, statistics_batches(cfg, splits.train, cfg.batch)())
    recomputed = read_statistics(saved)
    # The checkpoint holds the statistics recomputed under its weights, not the moving averages of training.
    assert _relative_gap(stored, recomputed) < 1e-4
    assert _relative_gap(moving.before_validation[epoch - 1], recomputed) > 1e-1
    # ... and they were in the model when it was validated: the logged val_loss is the saved file's.
    val = eval_dataset(splits.val, cfg.res, cfg.batch, pipeline=cfg.pipeline)
    logged = pd.read_csv(run / "log.csv").set_index("epoch").loc[epoch - 1, "val_loss"]
    assert saved.evaluate(val, verbose=0, return_dict=True)["loss"] == pytest.approx(logged, rel=1e-4)
    write_statistics(saved, moving.before_validation[epoch - 1])
    assert saved.evaluate(val, verbose=0, return_dict=True)["loss"] != pytest.approx(logged, rel=1e-2)
    # The final evaluation is that file's: its validation accuracy is the logged one.
    assert read_json(run / "metrics.json")["val"]["accuracy"] == pytest.approx(
        pd.read_csv(run / "log.csv").set_index("epoch").loc[epoch - 1, "val_accuracy"])



def test_batchnorm_recompute_on_a_model_without_batchnorm_says_it_does_nothing(bright, tmp_path, capsys):
    cfg = make_config({"recipe": "fast", "batchnorm_recompute": True, "model": "sequential_simple", "res": 32,
                       "dataset": "bright", "data_root": str(bright), "crossdomain": None, "epochs": 1, "batch": 8,
                       "tensorboard": False, "out": str(tmp_path)})
    train_run(cfg, verbose=0)
    assert "batchnorm_recompute is on but sequential_simple has no BatchNorm layer" in capsys.readouterr().out

# --- evaluation and precision ------------------------------------------------------------------------

def test_zoom_views_are_bilinear_centre_zooms_with_edge_fill():
    from scipy.ndimage import affine_transform

    x = np.random.default_rng(2).uniform(0, 255, (2, 9, 9, 3)).astype("float32")
    c = np.array([4.0, 4.0])
    for factor in ZOOMS:
        s = 1 / factor  # input coordinate = s * (output - c) + c, per axis
        want = np.stack([np.stack([affine_transform(img[..., ch], np.diag([s, s]), offset=c - s * c, order=1,
                                                    mode="nearest") for ch in range(3)], -1) for img in x])
        np.testing.assert_allclose(np.asarray(zoomed(x, factor)), want, atol=1e-3)
    assert [TTA.named(n).name for n in NAMES] == list(NAMES) and len(TTA(flip=True, zoom=True).views()) == 6
    with pytest.raises(ValueError, match="choose one of none, flip, zoom, flip\\+zoom"):
        TTA.named("flips")


def test_tta_flip_averages_the_mirror_images_probabilities():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(flat))  # no left-right symmetry
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    images = ImageSet(name="t", class_names=("a", "b", "c"), labels=np.arange(6) % 3, pixels=pixels)
    x = pixels.astype("float32")
    plain, mirror = np.asarray(model(x)), np.asarray(model(x[:, :, ::-1]))
    assert not np.allclose(plain, mirror, atol=1e-3)
    flip = TTA(flip=True)
    got = predict_probs(model, images, 8, model_classes=("a", "b", "c"), pipeline="tfdata", tta=flip)
    np.testing.assert_allclose(got, (plain + mirror) / 2, atol=1e-5)
    np.testing.assert_allclose(predict_probs(model, images, 8, model_classes=("a", "b", "c"), pipeline="tfdata"),
                               plain, atol=1e-5)
    views = [model(np.asarray(zoomed(v, z))) for v in (x, x[:, :, ::-1]) for z in ZOOMS]
    both = predict_probs(model, images, 8, model_classes=("a", "b", "c"), pipeline="tfdata",
                         tta=TTA(flip=True, zoom=True))
    np.testing.assert_allclose(both, np.mean([plain, mirror, *map(np.asarray, views)], axis=0), atol=1e-5)
    assert not np.allclose(both, got, atol=1e-3)
    metrics = evaluate_set(model, images, 8, model_classes=("a", "b", "c"), pipeline="tfdata", tta=flip)
    assert metrics["tta_flip"] and not metrics["tta_zoom"]


@pytest.mark.parametrize("name", ["vgg_lite", "ensemble", "tlf_resnet18"])
def test_mixed_precision_computes_in_bfloat16_and_keeps_the_softmax_float32(name):
    with dtype_policy("mixed_bfloat16"):
        model = build_model(name, 32, 7)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for later models
    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert model(np.zeros((1, 32, 32, 3), "float32")).dtype == tf.float32
    keras.backend.clear_session()


def test_float16_gets_loss_scaling_and_speed_options_reach_compile():
    with dtype_policy("mixed_float16"):
        model = _tiny_model()
    compile_model(model, 1e-3, make_config({"mixed_precision": "mixed_float16", "jit_compile": False,
                                            "steps_per_execution": 3}))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.jit_compile is False and model.steps_per_execution == 3


# --- a run records its recipe and its learning curve ---------------------------------------------------

def test_fast_run_records_recipe_tta_and_learning_curve(demo_root, tmp_path, monkeypatch):
    erased = []  # the probabilities the training pipeline was built with (traced once per pipeline)
    monkeypatch.setattr(augment, "erase_batch", lambda x, key, p: erased.append(p) or x)
    cfg = make_config({**FAST, "model": "sequential_simple", "res": 32, "epochs": 2, "batch": 16, "random_erasing": 0.5,
                       "limit_per_class": 6, "data_root": str(demo_root), "out": str(tmp_path / "runs")})
    run = train_run(cfg, verbose=0)
    assert run.name == "sequential_simple_32_demo_conservative_scratch_s42_lim6_fast"
    assert erased and set(erased) == {0.5}
    metrics = read_json(run / "metrics.json")
    assert metrics["recipe"] == "fast" and metrics["test"]["tta_flip"] and metrics["val"]["tta_flip"]
    assert read_json(run / "run_info.json")["recipe"] == "fast"
    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == [0, 1] and "elapsed_s" not in log  # log.csv stays free of timings
    curve = pd.read_csv(run / "learning_curve.csv")
    assert list(curve["epoch"]) == [1, 2] and (curve["elapsed_s"].diff().dropna() > 0).all()
    assert (curve["learning_rate"] > 0).all() and curve["val_accuracy"].tolist() == log["val_accuracy"].tolist()
    df, records = collect(tmp_path / "runs")
    assert df["recipe"].tolist() == ["fast"] and df["random_erasing"].tolist() == [0.5]
    curves = learning_curves(records)
    assert curves["epoch"].tolist() == [1, 2] and curves["minutes"].is_monotonic_increasing


# --- the speed benchmark -----------------------------------------------------------------------------

def test_train_speed_rows_and_table():
    rows = add_ratios([train_speed("sequential_simple", 16, 4, variant, steps=2, repeats=1)
                       for variant in ("fp32", "bf16")])
    assert [r["variant"] for r in rows] == ["fp32", "bf16"] and rows[0]["ratio_to_fp32"] == 1.0
    assert all(r["images_per_s"] > 0 for r in rows) and rows[1]["mixed_precision"] == "mixed_bfloat16"
    md = markdown({"machine": {"date_utc": "x", "host": "h", "cpu_model": "c", "cores": 2, "load_average_1m": 0,
                               "tensorflow": "t", "keras": "k", "gpus": []}, "train_speed": rows})
    assert "| sequential_simple | 16 | 4 | bf16 | 1 |" in md


def test_learning_curve_of_a_replayed_epoch_counts_its_time_once(tmp_path):
    """A run killed after writing epoch 3's row but before its backup replays epoch 3: the new row
    continues from epoch 2's clock, not from the lost epoch's."""
    from fer_keras.runs import Run
    from fer_keras.train.callbacks import CURVE_COLUMNS, WallClock

    curve = Run(tmp_path).learning_curve_file
    rows = [",".join(CURVE_COLUMNS)] + [f"main,{e},{100.0 * e},0.5,0.5,1.0,0.001" for e in (1, 2, 3)]
    curve.write_text("\n".join(rows) + "\n")
    clock = WallClock(tmp_path, "main")
    clock.on_train_begin()
    clock.on_epoch_begin(2)  # 0-based: epoch 3 again
    clock.on_epoch_end(2, {"accuracy": 0.6, "val_accuracy": 0.6, "val_loss": 0.9, "learning_rate": 0.001})
    with curve.open() as fh:
        written = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in written] == [1, 2, 3]
    assert 200.0 <= float(written[-1]["elapsed_s"]) < 250.0  # 200 s before it, not the lost epoch's 300 s
