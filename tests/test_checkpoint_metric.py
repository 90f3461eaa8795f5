"""checkpoint_metric (issue 23): the fast recipe may choose its best checkpoint by validation balanced accuracy."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from fer_keras.config import ConfigError, make_config
from fer_keras.runs import read_json
from fer_keras.train.callbacks import BestCheckpoint
from fer_keras.train.loop import compile_model, train_run
from fer_keras.train.recipe import BalancedAccuracy

# Three hand-made batches of 4 classes: label-smoothed targets (0.1 over 4 classes), class 3 never present.
TRUE = [np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), np.array([2, 0, 0, 1])]
PRED = [np.array([0, 1, 1, 0]), np.array([0, 1, 2, 3]), np.array([2, 2, 0, 1])]


def _smoothed(labels: np.ndarray, classes: int = 4, smoothing: float = 0.1) -> np.ndarray:
    return np.eye(classes)[labels] * (1 - smoothing) + smoothing / classes


def _probs(labels: np.ndarray, classes: int = 4, seed: int = 0) -> np.ndarray:
    """Softmax-like rows whose argmax is ``labels``."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 0.2, (len(labels), classes))
    p[np.arange(len(labels)), labels] = 0.5
    return (p / p.sum(axis=1, keepdims=True)).astype("float32")


def test_balanced_accuracy_equals_sklearns_over_batches_with_smoothed_targets_and_a_missing_class():
    metric = BalancedAccuracy(4)
    for i, (t, p) in enumerate(zip(TRUE, PRED, strict=True)):
        metric.update_state(_smoothed(t), _probs(p, seed=i))
        so_far = balanced_accuracy_score(np.concatenate(TRUE[:i + 1]), np.concatenate(PRED[:i + 1]))
        assert float(metric.result()) == pytest.approx(so_far, abs=1e-6)
    # not plain accuracy, nor a mean over all 4 classes (class 3 has no image: no recall to average)
    y, yhat = np.concatenate(TRUE), np.concatenate(PRED)
    assert float(metric.result()) != pytest.approx(np.mean(y == yhat))
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(np.eye(4)[[3, 3]], _probs(np.array([3, 1])))  # one-hot
    assert float(metric.result()) == pytest.approx(0.5)


def test_balanced_accuracy_takes_sample_weights_integer_labels_and_bfloat16_like_sklearn():
    y, yhat = np.concatenate(TRUE), np.concatenate(PRED)
    weights = np.linspace(0.5, 2.0, len(y))
    metric = BalancedAccuracy(4)
    metric.update_state(keras.ops.cast(_smoothed(y), "bfloat16"), keras.ops.cast(_probs(yhat), "bfloat16"),
                        sample_weight=weights)
    assert float(metric.result()) == pytest.approx(balanced_accuracy_score(y, yhat, sample_weight=weights),
                                                   abs=1e-6)
    sparse = BalancedAccuracy(4)
    sparse.update_state(y[:, None], _probs(yhat))
    assert float(sparse.result()) == pytest.approx(balanced_accuracy_score(y, yhat), abs=1e-6)


def test_balanced_accuracy_serialises():
    metric = BalancedAccuracy(5, name="bal")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(restored, BalancedAccuracy) and (restored.num_classes, restored.name) == (5, "bal")


def test_checkpoint_metric_is_the_fast_recipes_and_not_for_the_triplet_procedure():
    with pytest.raises(ConfigError, match="checkpoint_metric are not the protocol's; set recipe to 'fast'"):
        make_config({"checkpoint_metric": "balanced_accuracy"})
    with pytest.raises(ConfigError, match="tlf_resnet18 chooses its checkpoint by val_centroid_balanced_accuracy"):
        make_config({"recipe": "fast", "model": "tlf_resnet18", "checkpoint_metric": "balanced_accuracy"})
    assert make_config({}).checkpoint_monitor() == "val_accuracy"
    assert make_config({"model": "tlf_resnet18"}).checkpoint_monitor() == "val_centroid_balanced_accuracy"
    fast = make_config({"recipe": "fast", "checkpoint_metric": "balanced_accuracy"})
    assert fast.checkpoint_monitor() == "val_balanced_accuracy"
    assert make_config({"recipe": "fast", "model": "esr",
                        "checkpoint_metric": "balanced_accuracy"}).checkpoint_monitor() == "val_balanced_accuracy"


def test_compile_adds_balanced_accuracy_only_when_it_chooses_the_checkpoint():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    x, y = np.random.default_rng(0).uniform(size=(8, 4)).astype("float32"), np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 0]]
    compile_model(model, 1e-2, make_config({"recipe": "fast"}))
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    compile_model(model, 1e-2, make_config({"recipe": "fast", "checkpoint_metric": "balanced_accuracy"}))
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    predicted = np.argmax(model.predict(x, verbose=0), axis=1)
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y.argmax(1), predicted), abs=1e-6)


def test_a_checkpoint_metric_missing_from_the_logs_stops_the_run(tmp_path):
    checkpoint = BestCheckpoint(tmp_path / "best.keras", monitor="val_balanced_accuracy")
    with pytest.raises(ValueError, match="'val_balanced_accuracy' is not among the epoch's logs"):
        checkpoint.on_epoch_end(0, {"val_accuracy": 0.5, "val_loss": 1.0})


def test_fast_run_with_ema_and_bfloat16_checkpoints_by_validation_balanced_accuracy(demo_root, tmp_path, capsys):
    cfg = make_config({"recipe": "fast", "model": "sequential_simple", "res": 32, "epochs": 2, "batch": 16,
                       "limit_per_class": 6, "ema": True, "ema_momentum": 0.5, "label_smoothing": 0.1,
                       "mixed_precision": "mixed_bfloat16", "checkpoint_metric": "balanced_accuracy",
                       "tensorboard": False, "data_root": str(demo_root), "out": str(tmp_path / "runs")})
    run = train_run(cfg, verbose=0)
    assert "best checkpoint chosen by val_balanced_accuracy" in capsys.readouterr().out
    info = read_json(run / "run_info.json")
    assert (info["checkpoint_monitor"], info["mixed_precision"]) == ("val_balanced_accuracy", "mixed_bfloat16")
    best = read_json(run / "best.json")
    assert set(best) == {"val_balanced_accuracy", "epoch"}
    log = pd.read_csv(run / "log.csv")
    assert {"val_balanced_accuracy", "balanced_accuracy", "val_accuracy"} <= set(log.columns)
    assert log["val_balanced_accuracy"].between(0, 1).all()
    # the first epoch with the highest score (a tie does not replace the checkpoint)
    assert best["epoch"] == int(log["val_balanced_accuracy"].idxmax()) + 1
    assert best["val_balanced_accuracy"] == pytest.approx(log["val_balanced_accuracy"].max())


def test_esr_reports_the_balanced_accuracy_of_its_branch_mean():
    from fer_keras.registry import build_model

    model = build_model("esr", 32, 3, branches=2)
    cfg = make_config({"recipe": "fast", "model": "esr", "checkpoint_metric": "balanced_accuracy"})
    compile_model(model, 1e-3, cfg)
    x, y = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32"), np.eye(3)[[0, 1, 2, 0, 1, 2]]
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    predicted = np.argmax(model.predict(x, verbose=0), axis=1)
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y.argmax(1), predicted), abs=1e-6)
