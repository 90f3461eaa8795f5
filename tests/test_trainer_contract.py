"""Training procedures plug in through one contract: phases via RunContext.run_phase, a TrainResult back,
and train_run evaluating every procedure."""

import pytest

from fer_keras import registry
from fer_keras.config import make_config
from fer_keras.runs import Run, read_json
from fer_keras.train.loop import RunContext, TrainResult, train_run


def _ctx(tmp_path, **cfg) -> RunContext:
    # run_phase needs only the config and the run folder.
    return RunContext(cfg=make_config(cfg), run_dir=tmp_path, splits=None, strategy=None, global_batch=1,
                      train_data=None, steps_per_epoch=1, val_ds=None, class_weight=None)


def test_a_phase_runs_once_is_recorded_and_timed(tmp_path):
    calls = []
    ctx = _ctx(tmp_path)
    assert ctx.run_phase("embedding", lambda: calls.append("embedding"))
    assert not ctx.run_phase("embedding", lambda: calls.append("again"))
    state = read_json(Run(tmp_path).state_file)
    assert calls == ["embedding"] and state["phases_done"] == ["embedding"] and state["train_seconds"] >= 0
    # A new process (a resumed run) reads the record from the folder and skips the phase too.
    assert not _ctx(tmp_path).run_phase("embedding", lambda: calls.append("resumed"))
    assert calls == ["embedding"]


def test_a_killed_phase_is_not_recorded_and_runs_again(tmp_path):
    def killed():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _ctx(tmp_path).run_phase("main", killed)
    assert not Run(tmp_path).state_file.exists()
    calls = []
    assert _ctx(tmp_path).run_phase("main", lambda: calls.append("main"))
    assert calls == ["main"]


def test_options_come_validated_with_their_defaults(tmp_path):
    ctx = _ctx(tmp_path, model="tlf_resnet18", model_options={"margin": 1})
    assert ctx.options == {"head": "svm", "margin": 1.0, "mining": "batch_hard"}


def fake_trainer(ctx: RunContext, model) -> TrainResult:
    """A procedure that trains nothing: one phase saving the built model as the run's model."""
    ctx.run_phase("save", lambda: model.save(ctx.run.model_file))
    return TrainResult(split_metrics=lambda m, images: {"extra_n": len(images)})


def test_train_run_evaluates_a_custom_procedure_with_its_extra_metrics(demo_root, tmp_path, monkeypatch):
    spec = registry.ModelSpec(name="fake_procedure", builder=registry.get_spec("sequential_simple").builder,
                              family="test", paper_name="-", description="test-only",
                              trainer="test_trainer_contract:fake_trainer")
    monkeypatch.setitem(registry._REGISTRY, "fake_procedure", spec)
    cfg = make_config({"model": "fake_procedure", "res": 32, "batch": 16, "limit_per_class": 4,
                       "tensorboard": False, "crossdomain": None, "data_root": str(demo_root),
                       "out": str(tmp_path)})
    run = train_run(cfg, verbose=0)
    metrics = read_json(Run(run).metrics_file)
    assert metrics["val"]["extra_n"] == metrics["val"]["n"] and metrics["test"]["extra_n"] == 7 * 16
    assert read_json(Run(run).state_file)["phases_done"] == ["save"]
