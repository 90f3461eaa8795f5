"""train_minutes (issue 25): one wall-clock budget for models whose epochs cost very different times. No epoch
starts that would end past it, the time of earlier phases and restarts counts, the stop survives a restart,
and a phase that begins with the budget spent is not trained."""

from __future__ import annotations

import types

import pytest
from conftest import tiny_backbone
from test_train_promises import _cfg

from fer_keras.config import ConfigError, make_config
from fer_keras.runs import Run, read_json, write_json
from fer_keras.train import callbacks, loop
from fer_keras.train.callbacks import TimeBudget
from fer_keras.train.loop import train_run


class FakeClock:
    """Stands in for Stopwatch: every clock made reads the one shared ``now``."""

    now = 0.0

    def __init__(self):
        self.start = FakeClock.now

    @property
    def seconds(self) -> float:
        return FakeClock.now - self.start


def _epochs_until_stop(budget: TimeBudget, epoch_seconds: float, epochs: int = 10, first: int = 0) -> int:
    """Epochs the callback lets run, each ``epoch_seconds`` long on the fake clock."""
    model = types.SimpleNamespace(stop_training=False)
    budget.set_model(model)
    budget.on_train_begin()
    for epoch in range(first, epochs):
        budget.on_epoch_begin(epoch)
        FakeClock.now += epoch_seconds
        budget.on_epoch_end(epoch, {})
        if model.stop_training:
            return epoch + 1 - first
    return epochs - first


@pytest.fixture
def fake_clock(monkeypatch):
    FakeClock.now = 1000.0
    monkeypatch.setattr(callbacks, "Stopwatch", FakeClock)


def test_no_epoch_starts_that_would_end_past_the_budget(tmp_path, fake_clock, capsys):
    # 25 s epochs, 1 minute: after epoch 2 (50 s) a third would end at 75 s: stop there.
    assert _epochs_until_stop(TimeBudget(tmp_path, "main", 1.0), 25.0) == 2
    out = capsys.readouterr().out
    assert "training stops after epoch 2 of phase main: 0.8 of 1 min spent" in out
    # an epoch that ends exactly at the budget still runs; a budget below one epoch still trains one
    assert _epochs_until_stop(TimeBudget(tmp_path, "main", 1.0), 20.0) == 3
    assert _epochs_until_stop(TimeBudget(tmp_path, "main", 0.1), 25.0) == 1
    assert _epochs_until_stop(TimeBudget(tmp_path, "main", 60.0), 25.0, epochs=4) == 4


def test_earlier_phases_and_a_replayed_epoch_are_counted_once(tmp_path, fake_clock):
    curve = Run(tmp_path).learning_curve_file
    header = "phase,epoch,elapsed_s,accuracy,val_accuracy,val_loss,learning_rate\n"
    frozen = "frozen,1,20.0,,,,\nfrozen,2,40.0,,,,\n"
    # A fresh main phase after 40 s of frozen training: its first epoch ends at 65 s, a second would end
    # past the minute.
    curve.write_text(header + frozen)
    assert _epochs_until_stop(TimeBudget(tmp_path, "main", 1.0), 25.0) == 1
    # Resumed at main epoch 2 after a kill: 65 s were spent before it (epoch 2's old row, written before the
    # kill, does not count). 2 min allow epoch 2 (90 s) and epoch 3 (115 s), not a fourth (140 s).
    curve.write_text(header + frozen + "main,1,65.0,,,,\nmain,2,90.0,,,,\n")
    assert _epochs_until_stop(TimeBudget(tmp_path, "main", 2.0), 25.0, first=1) == 2


def test_the_budget_stops_before_the_ema_swap_and_the_backup_saves_its_stop(tmp_path):
    cfg = make_config({"recipe": "fast", "ema": True, "train_minutes": 5})
    names = [type(cb).__name__ for cb in callbacks.protocol_callbacks(cfg, tmp_path, "main")]
    assert names.index("TimeBudget") < names.index("EMASwap") < names.index("EpochBackup") == len(names) - 1
    assert "TimeBudget" not in [type(cb).__name__ for cb in callbacks.protocol_callbacks(make_config({}), tmp_path,
                                                                                         "main")]


def test_an_epoch_is_measured_from_the_last_ones_end(tmp_path, fake_clock):
    """What comes after the budget's check in an epoch (checkpoint, backup) counts in the next epoch's length."""
    model = types.SimpleNamespace(stop_training=False)
    budget = TimeBudget(tmp_path, "main", 1.0)
    budget.set_model(model)
    budget.on_train_begin()
    budget.on_epoch_begin(0)
    FakeClock.now += 20.0
    budget.on_epoch_end(0, {})  # 20 s spent, the next assumed 20 s: goes on
    FakeClock.now += 15.0  # checkpoint and backup writes of epoch 1
    budget.on_epoch_begin(1)
    FakeClock.now += 20.0
    budget.on_epoch_end(1, {})  # 55 s spent, the last epoch took 35 s: a third would end at 90 s
    assert model.stop_training


def test_the_cosine_schedule_progressive_esr_and_several_workers_refuse_a_time_budget(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="esr's progressive schedule"):
        make_config({"model": "esr", "model_options": {"schedule": "progressive"}, "train_minutes": 5})
    assert make_config({"model": "esr", "train_minutes": 5}).train_minutes == 5  # joint: one phase
    monkeypatch.setattr(loop, "is_multi_worker", lambda strategy: True)
    with pytest.raises(ConfigError, match="train_minutes in a multi-worker run"):
        train_run(make_config({"train_minutes": 5, "out": str(tmp_path)}), verbose=0)
    with pytest.raises(ConfigError, match="train_minutes ends a run at a time"):
        make_config({"recipe": "fast", "lr_schedule": "cosine", "reduce_lr_patience": None, "train_minutes": 5})
    assert make_config({"train_minutes": 5}).train_minutes == 5
    with pytest.raises(ConfigError, match="train_minutes"):
        make_config({"train_minutes": 0})


def test_a_spent_budget_ends_the_run_and_a_restart_trains_no_more(bright, tmp_path, capsys):
    cfg = _cfg(bright, tmp_path / "runs", epochs=4, train_minutes=1e-6)
    train_run(cfg, verbose=0)
    run = Run(cfg.run_dir())
    assert "training stops after epoch 1 of phase main" in capsys.readouterr().out
    assert len(run.log_file("main").read_text().strip().splitlines()) == 2  # header + one epoch
    assert read_json(run.backup_dir("main") / "resume.json")["stopped"] is True
    assert run.metrics_file.is_file()
    # Killed after the stopping epoch's backup, before the phase was recorded and the run evaluated: the
    # restart trains no further epoch (the backup says the phase stopped).
    run.metrics_file.unlink()
    write_json(run.state_file, {"phases_done": []})
    train_run(cfg, verbose=0)
    assert len(run.log_file("main").read_text().strip().splitlines()) == 2
    assert run.metrics_file.is_file()


def test_a_phase_that_begins_with_the_budget_spent_is_not_trained(bright, tmp_path, capsys, tiny_pretrained):
    weights = tmp_path / "cache"
    weights.mkdir()
    tiny_backbone((32, 32, 3), 3, pretrain="scratch", pooling="gap", weights_dir=None).get_layer(
        "backbone").save_weights(weights / "tiny.weights.h5")
    cfg = _cfg(bright, tmp_path / "runs", model="tiny_pretrained", pretrain="imagenet", weights_dir=str(weights),
               phase1_epochs=3, epochs=3, train_minutes=1e-6)
    train_run(cfg, verbose=0)
    out = capsys.readouterr().out
    run = Run(cfg.run_dir())
    assert "training stops after epoch 1 of phase frozen" in out
    assert "phase main: not trained, the time budget (1e-06 min) is spent" in out
    assert read_json(run.state_file)["phases_done"] == ["frozen", "main"]
    assert not run.log_file("main").is_file() and run.metrics_file.is_file()
