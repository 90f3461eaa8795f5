"""Promises of the README about training, each shown on a real run: a SIGKILL mid-epoch resumes, a two-phase
run resumes in its main phase, best.json keeps a better checkpoint, the test set never steers training, and
the --force, --deterministic and --paper-faithful flags do what they say."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import pytest
from conftest import tiny_backbone
from stored_runs import write_set
from tensorflow.python.framework import config as tf_config

from fer_keras.config import make_config
from fer_keras.runs import TMP_MARK, Run, read_json
from fer_keras.train import cli
from fer_keras.train.loop import train_run

ROOT = Path(__file__).resolve().parent.parent
#: A small learnable set (brightness classes, stored_runs.write_set): 3 classes, 32 px, 16 train images each.
TINY = {"model": "sequential_simple", "res": 32, "batch": 8, "lr": 1e-3, "tensorboard": False,
        "crossdomain": None, "dataset": "bright"}


@pytest.fixture
def op_determinism():
    """Switches op determinism off again after the test (a deterministic run turns it on for the process)."""
    yield
    tf_config.disable_op_determinism()


def _cfg(data_root: Path, out: Path, **kw):
    return make_config({**TINY, "data_root": str(data_root), "out": str(out), **kw})


def _epochs(log: Path) -> list[str]:
    return [line.split(",")[0] for line in log.read_text().strip().splitlines()[1:]]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_HANG_IN_EPOCH_2 = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import keras
    from fer_keras.config import make_config
    from fer_keras.train.loop import train_run

    class Hang(keras.callbacks.Callback):
        # In the second epoch, after two batches: say so, then wait to be killed.
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                Path(sys.argv[2]).write_text("mid-epoch")
                time.sleep(600)

    train_run(make_config(json.loads(sys.argv[1])), verbose=0, extra_callbacks=[Hang()])
""")


def test_a_run_killed_by_sigkill_mid_epoch_resumes_and_keeps_its_better_checkpoint(bright, tmp_path, capsys):
    """SIGKILL (no cleanup runs) in the second epoch; the rerun resumes at that epoch, not from scratch.
    Before it, best.json is set to a score no epoch can beat (a checkpoint better than what the resumed
    epochs reach): the resumed run must leave best.keras alone."""
    cfg = _cfg(bright, tmp_path / "runs", epochs=3, early_stopping_patience=10)
    marker = tmp_path / "mid_epoch"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _HANG_IN_EPOCH_2, json.dumps(cfg.model_dump(mode="json")),
                             str(marker)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), f"the run never reached its second epoch: {proc.poll()} {proc.stderr.read()[-3000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    run = Run(cfg.run_dir())
    assert not run.metrics_file.exists()
    before = run.log_file("main").read_text().splitlines()
    assert [r.split(",")[0] for r in before[1:]] == ["0"]  # the first epoch committed, the second lost
    best = run.model_file
    (run.best_score_file).write_text(json.dumps({"val_accuracy": 1.0, "epoch": 1}))
    kept = _sha(best)

    capsys.readouterr()
    train_run(cfg, verbose=0)
    assert "phase main: resuming at epoch 2" in capsys.readouterr().out
    assert _epochs(run.log_file("main")) == ["0", "1", "2"]
    assert run.log_file("main").read_text().splitlines()[:2] == before  # epoch 0 is not trained again
    assert _sha(best) == kept, "a resumed epoch replaced a better checkpoint"
    assert read_json(run.best_score_file) == {"val_accuracy": 1.0, "epoch": 1}
    assert read_json(run.metrics_file)["best_epoch"] == 1
    assert not list(run.dir.rglob(f".*{TMP_MARK}*"))


class _Interrupt(keras.callbacks.Callback):
    """Stops the process's training in the main phase's second epoch (``fits`` counts the phases' fits)."""

    def __init__(self):
        super().__init__()
        self.fits = 0

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_begin(self, epoch, logs=None):
        if self.fits == 2 and epoch == 1:
            raise KeyboardInterrupt("killed in the main phase")


def test_a_two_phase_run_interrupted_in_its_main_phase_resumes_there_with_the_backbone_unfrozen(
        bright, tmp_path, monkeypatch, capsys, tiny_pretrained):
    weights = tmp_path / "cache"
    weights.mkdir()
    tiny_backbone((32, 32, 3), 3, pretrain="scratch", pooling="gap", weights_dir=None).get_layer(
        "backbone").save_weights(weights / "tiny.weights.h5")
    cfg = _cfg(bright, tmp_path / "runs", model="tiny_pretrained", pretrain="imagenet", weights_dir=str(weights),
               phase1_epochs=1, epochs=2, early_stopping_patience=10)
    trainable: list[int] = []  # trainable weights at the start of every fit
    counter = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: trainable.append(len(counter.model.trainable_weights)))
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, verbose=0, extra_callbacks=[counter, _Interrupt()])
    run = Run(cfg.run_dir())
    assert read_json(run.state_file)["phases_done"] == ["frozen"]
    frozen_log = run.log_file("frozen").read_text()
    assert _epochs(run.log_file("frozen")) == ["0"] and _epochs(run.log_file("main")) == ["0"]
    frozen_count, main_count = trainable

    capsys.readouterr()
    train_run(cfg, verbose=0, extra_callbacks=[counter])
    out = capsys.readouterr().out
    assert "phase frozen" not in out and "phase main: resuming at epoch 2" in out
    assert read_json(run.state_file)["phases_done"] == ["frozen", "main"]
    assert run.log_file("frozen").read_text() == frozen_log  # the finished phase is not trained again
    assert _epochs(run.log_file("main")) == ["0", "1"]
    assert trainable[2:] == [main_count] and frozen_count < main_count  # resumed with the backbone trainable
    assert run.metrics_file.is_file()


def test_changing_only_the_test_set_gives_the_same_checkpoint(bright, tmp_path, op_determinism):
    """The test split never drives checkpointing, early stopping or the learning rate: two deterministic
    runs whose test folders differ (other images, other counts) log and keep the same model."""
    other = tmp_path / "data"
    shutil.copytree(bright / "bright" / "train", other / "bright" / "train")
    write_set(other / "bright" / "test", 5, seed=99)
    kw = {"epochs": 2, "lr": 0.01, "reduce_lr_patience": 1, "early_stopping_patience": 2, "deterministic": True}
    a = Run(train_run(_cfg(bright, tmp_path / "a", **kw), verbose=0))
    b = Run(train_run(_cfg(other, tmp_path / "b", **kw), verbose=0))
    assert read_json(a.metrics_file)["test"]["n"] == 24 and read_json(b.metrics_file)["test"]["n"] == 15
    assert a.log_file("main").read_text() == b.log_file("main").read_text()
    assert read_json(a.best_score_file) == read_json(b.best_score_file)
    for wa, wb in zip(a.model().weights, b.model().weights, strict=True):
        assert (keras.ops.convert_to_numpy(wa) == keras.ops.convert_to_numpy(wb)).all(), wa.name


def test_force_deletes_the_run_folder_deterministic_turns_op_determinism_on_paper_faithful_validates_on_test(
        bright, tmp_path, op_determinism):
    tf_config.disable_op_determinism()
    values = {**TINY, "epochs": 1, "data_root": bright, "out": tmp_path / "runs", "deterministic": "true",
              "paper_faithful": "true"}
    args = [*sum(([f"--{k.replace('_', '-')}", str(v)] for k, v in values.items()), []), "--quiet"]
    run = Run(make_config({**TINY, "epochs": 1, "data_root": str(bright), "out": str(tmp_path / "runs"),
                           "deterministic": True, "paper_faithful": True}).run_dir())
    # A finished run of another config under the same id: refused without --force, deleted with it.
    run.dir.mkdir(parents=True)
    (run.dir / "config.yaml").write_text("lr: 0.5\n")
    (run.dir / "left_over.txt").write_text("from the old run")
    assert cli.main(args) == 2
    assert not tf_config.is_op_determinism_enabled()
    assert cli.main([*args, "--force"]) == 0
    assert not (run.dir / "left_over.txt").exists()
    assert tf_config.is_op_determinism_enabled(), "--deterministic true turns op determinism on"
    # --paper-faithful: the test folder is the validation set (as in the paper's notebooks), so there is
    # no separate test score.
    metrics = read_json(run.metrics_file)
    assert "test" not in metrics and metrics["val"]["n"] == 3 * 8
    assert read_json(run.run_info_file)["val_source"] == "test (paper_faithful)"
    validated = [line.split(",")[0] for line in run.predictions_file("val").read_text().splitlines()[1:]]
    assert sorted(validated) == sorted(str(p) for p in (bright / "bright" / "test").rglob("*.png"))
