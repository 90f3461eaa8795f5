"""End to end on the synthetic demo data: train, resume, two phases, cross-domain."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from fer_keras import registry
from fer_keras.config import make_config
from fer_keras.evaluate import crossdomain
from fer_keras.models._head import classifier_on_backbone
from fer_keras.predict.predictor import load_run
from fer_keras.runs import find_runs, read_json
from fer_keras.train import cli
from fer_keras.train.loop import train_run

FAST = {"model": "sequential_simple", "res": 32, "epochs": 2, "batch": 16, "limit_per_class": 10,
        "lr": 1e-3, "tensorboard": False}


def _cfg(demo_root, tmp_path, **kw):
    return make_config({**FAST, "data_root": str(demo_root), "out": str(tmp_path / "runs"), **kw})


def test_train_then_crossdomain_end_to_end(demo_root, tmp_path, capsys):
    code = cli.main(["--config", "configs/demo.yaml", "--quiet", *sum(
        ([f"--{k.replace('_', '-')}", str(v)] for k, v in {**FAST, "data_root": demo_root,
                                                           "out": tmp_path / "runs"}.items()), [])])
    assert code == 0
    run = tmp_path / "runs" / "sequential_simple_32_demo_conservative_scratch_s42_lim10"
    for name in ("config.yaml", "classes.json", "class_weights.json", "data_summary.json", "versions.txt",
                 "log.csv", "best.keras", "metrics.json", "confusion_val_counts.png",
                 "confusion_test_normalized.png", "run_info.json"):
        assert (run / name).is_file(), name
    metrics = read_json(run / "metrics.json")
    assert metrics["test"]["n"] == 7 * 16  # every demo test image exactly once
    assert read_json(run / "classes.json") == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    weights = read_json(run / "class_weights.json")["weights"]
    assert max(weights.values()) <= 3.0 and weights["happy"] == 1.0  # conservative, computed on train
    assert read_json(run / "run_info.json")["preprocessing"] == "rescale"
    assert "val" in capsys.readouterr().out
    # Predicting on the test folder sees the images as the evaluation did: the same accuracy.
    preds = load_run(run).predict(demo_root / "demo" / "test")
    assert len(preds) == metrics["test"]["n"]
    hits = np.mean([Path(p.source).parent.name == p.label for p in preds])
    assert hits == pytest.approx(metrics["test"]["accuracy"])

    assert crossdomain.main(["--runs", str(tmp_path / "runs")]) == 0
    result = read_json(run / "crossdomain_demo_wild.json")
    assert result["n"] == 7 * 24 and 0 <= result["accuracy"] <= 1
    out = capsys.readouterr().out
    assert "crossdomain: 1 evaluated, 0 already evaluated" in out and run.name in out
    # A second call evaluates nothing new.
    assert crossdomain.main(["--runs", str(tmp_path / "runs")]) == 0
    assert "crossdomain: 0 evaluated, 1 already evaluated" in capsys.readouterr().out


def test_crossdomain_refuses_a_set_with_other_classes(demo_root, tmp_path, capsys):
    run = train_run(_cfg(demo_root, tmp_path, epochs=1), verbose=0)
    from conftest import make_folder_dataset

    other = make_folder_dataset(tmp_path / "other", {"happy": 2, "sad": 2})
    assert crossdomain.main(["--runs", str(tmp_path / "runs"), "--data", str(other)]) == 1
    assert "class sets differ" in capsys.readouterr().err
    assert not (run / "crossdomain_other.json").exists()


class _Kill(keras.callbacks.Callback):
    """Simulates a crash in the middle of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise KeyboardInterrupt("killed")


def test_killed_run_resumes_losing_at_most_the_current_epoch(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path, epochs=3, early_stopping_patience=10)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, verbose=0, extra_callbacks=[_Kill(2)])
    run = cfg.run_dir()
    assert not (run / "metrics.json").exists()
    assert len((run / "log.csv").read_text().strip().splitlines()) == 1 + 2  # epochs 0 and 1 logged
    train_run(cfg, verbose=0)
    epochs = [line.split(",")[0] for line in (run / "log.csv").read_text().strip().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]  # resumed at epoch 2, not from scratch
    assert (run / "metrics.json").is_file()
    # A finished run is not trained again.
    train_run(cfg, verbose=0)
    assert len((run / "log.csv").read_text().strip().splitlines()) == 4


def test_a_different_config_in_the_same_run_folder_is_refused(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path, epochs=1, run_id="fixed")
    train_run(cfg, verbose=0)
    with pytest.raises(ValueError, match="differs in: lr"):
        train_run(_cfg(demo_root, tmp_path, epochs=1, run_id="fixed", lr=0.5), verbose=0)


def _tiny_backbone(input_shape, num_classes, *, pretrain, pooling, weights_dir, paper_faithful=False):
    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, name="bb_conv")(inp)
    backbone = keras.Model(inp, x, name="backbone")
    if pretrain == "imagenet":
        from fer_keras.models.weights import find_weights

        backbone.load_weights(find_weights("tiny.weights.h5", "https://example.org/tiny", weights_dir))
    return classifier_on_backbone(backbone, input_shape, num_classes, pooling=pooling, name="tiny",
                                  preprocessing="rescale" if paper_faithful else "tf")


@pytest.fixture
def tiny_pretrained(monkeypatch):
    spec = registry.ModelSpec(name="tiny_pretrained", builder=_tiny_backbone, family="test", paper_name="-",
                              description="test-only", pretrains=("scratch", "imagenet"))
    monkeypatch.setitem(registry._REGISTRY, "tiny_pretrained", spec)
    return spec


def test_pretrained_backbone_trains_in_two_phases(demo_root, tmp_path, tiny_pretrained):
    weights = tmp_path / "cache"
    weights.mkdir()
    source = _tiny_backbone((32, 32, 3), 7, pretrain="scratch", pooling="gap", weights_dir=None)
    source.get_layer("backbone").save_weights(weights / "tiny.weights.h5")
    cfg = _cfg(demo_root, tmp_path, model="tiny_pretrained", pretrain="imagenet", weights_dir=str(weights),
               phase1_epochs=1, epochs=1)
    run = train_run(cfg, verbose=0)
    assert read_json(run / "state.json")["phases_done"] == ["frozen", "main"]
    assert (run / "log_frozen.csv").is_file() and (run / "log.csv").is_file()
    assert read_json(run / "run_info.json")["preprocessing"] == "tf"


def test_missing_weights_fail_naming_file_and_folder(demo_root, tmp_path, tiny_pretrained, capsys):
    args = ["--model", "tiny_pretrained", "--pretrain", "imagenet", "--weights-dir", str(tmp_path / "empty"),
            "--data-root", str(demo_root), "--out", str(tmp_path / "runs"), "--res", "32"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "tiny.weights.h5" in err and str(tmp_path / "empty") in err and "https://example.org/tiny" in err


def test_cli_reports_unknown_model_and_bad_resolution(capsys):
    assert cli.main(["--model", "resnet19"]) == 2
    assert "Did you mean 'resnet18'" in capsys.readouterr().err
    assert cli.main(["--model", "sequential_simple", "--res", "8"]) == 2
    assert "res" in capsys.readouterr().err


def test_mirrored_strategy_on_two_logical_cpus(demo_root, tmp_path):
    # Logical devices must be configured before TensorFlow starts: use a fresh interpreter.
    code = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from fer_keras.config import make_config
        from fer_keras.train.loop import train_run
        cfg = make_config({{**{FAST!r}, "data_root": {str(demo_root)!r}, "out": {str(tmp_path)!r},
                           "epochs": 1, "devices": ["/cpu:0", "/cpu:1"]}})
        train_run(cfg, verbose=0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    (run,) = find_runs(tmp_path)
    info = json.loads((run / "run_info.json").read_text())
    assert info["strategy"] == "MirroredStrategy"
    assert info["replicas"] == 2 and info["global_batch"] == 2 * FAST["batch"]


def test_legacy_pipeline_trains_a_run(demo_root, tmp_path):
    run = train_run(_cfg(demo_root, tmp_path, epochs=1, pipeline="legacy", limit_per_class=6), verbose=0)
    assert read_json(run / "run_info.json")["pipeline"] == "legacy"
    assert read_json(run / "metrics.json")["val"]["n"] > 0
