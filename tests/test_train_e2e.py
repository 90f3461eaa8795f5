"""End to end on the synthetic demo data: train, resume, two phases, cross-domain."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import tiny_backbone

from fer_keras import registry
from fer_keras.config import make_config
from fer_keras.evaluate import crossdomain
from fer_keras.predict.predictor import load_run
from fer_keras.runs import Run, find_runs, read_json
from fer_keras.train import cli
from fer_keras.train.callbacks import EpochBackup
from fer_keras.train.loop import _check_same_run, compile_model, train_run

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
    # The prior correction: tau chosen on validation, saved, reported beside the plain test numbers, and the
    # predictor with it on scores what metrics.json says the corrected model scores.
    prior = read_json(run / "prior_correction.json")
    assert prior["chosen_on"] == "validation balanced accuracy" and set(prior["prior"]) == set(weights)
    assert metrics["test"]["prior_corrected"]["tau"] == prior["tau"] == metrics["val"]["prior_corrected"]["tau"]
    corrected = load_run(run, prior=True).predict(demo_root / "demo" / "test")
    hits = np.mean([Path(p.source).parent.name == p.label for p in corrected])
    assert hits == pytest.approx(metrics["test"]["prior_corrected"]["accuracy"])

    assert crossdomain.main(["--runs", str(tmp_path / "runs")]) == 0
    result = read_json(run / "crossdomain_demo_wild.json")
    assert result["n"] == 7 * 24 and 0 <= result["accuracy"] <= 1
    assert result["prior_corrected"]["tau"] == prior["tau"]
    out = capsys.readouterr().out
    assert "crossdomain: 1 evaluated, 0 already evaluated" in out and run.name in out
    # A second call evaluates nothing new.
    assert crossdomain.main(["--runs", str(tmp_path / "runs")]) == 0
    assert "crossdomain: 0 evaluated, 1 already evaluated" in capsys.readouterr().out


def test_crossdomain_scores_a_subset_set_and_refuses_an_unknown_class(demo_root, tmp_path, capsys):
    run = train_run(_cfg(demo_root, tmp_path, epochs=1), verbose=0)
    from conftest import make_folder_dataset

    # The training run also scored its test images that have no copy in training (issue 24).
    dedup = read_json(run / "metrics.json")["test"]["dedup"]
    assert dedup["images"] == read_json(run / "metrics.json")["test"]["n"] and 0 <= dedup["unique"] <= dedup["images"]
    subset = make_folder_dataset(tmp_path / "subset", {"happy": 2, "sad": 2})
    assert crossdomain.main(["--runs", str(tmp_path / "runs"), "--data", str(subset)]) == 0
    result = read_json(run / "crossdomain_subset.json")
    assert result["classes_evaluated"] == ["happy", "sad"] and result["n"] == 4
    assert "evaluated on the 2 classes the set has (happy, sad)" in capsys.readouterr().out
    other = make_folder_dataset(tmp_path / "other", {"happy": 2, "contempt": 2})
    assert crossdomain.main(["--runs", str(tmp_path / "runs"), "--data", str(other)]) == 1
    assert "holds class(es) the model does not know: contempt" in capsys.readouterr().err
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


@pytest.fixture
def op_determinism():
    """Switches TensorFlow's op determinism off again after the test (a run turns it on for the process)."""
    yield
    from tensorflow.python.framework import config as tf_config  # no public switch back

    tf_config.disable_op_determinism()


def test_resumed_run_logs_exactly_what_an_uninterrupted_run_logs(demo_root, tmp_path, op_determinism):
    # Short patiences: the learning rate is cut and early stopping counts within a few epochs, so a
    # resume that restarted their counters (or the data, or dropout's seeds) would log other numbers.
    kw = {"epochs": 6, "lr": 0.01, "reduce_lr_patience": 1, "early_stopping_patience": 3, "deterministic": True,
          "crossdomain": None}
    whole = train_run(_cfg(demo_root, tmp_path / "whole", **kw), verbose=0)
    cfg = _cfg(demo_root, tmp_path / "killed", **kw)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, verbose=0, extra_callbacks=[_Kill(3)])
    assert len((cfg.run_dir() / "log.csv").read_text().strip().splitlines()) == 1 + 3
    resumed = train_run(cfg, verbose=0)
    # Same machine, same process type, op determinism: the numbers are equal to the last bit.
    assert (resumed / "log.csv").read_text() == (whole / "log.csv").read_text()


DISK_FULL_RUN = {**FAST, "epochs": 3, "reduce_lr_patience": 1, "deterministic": True, "crossdomain": None}


def _train_cli(demo_root, out: Path) -> int:
    values = {**DISK_FULL_RUN, "data_root": demo_root, "out": out}
    return cli.main(["--config", "configs/demo.yaml", "--quiet",
                     *sum(([f"--{k.replace('_', '-')}", str(v)] for k, v in values.items()), [])])


@pytest.fixture(scope="module")
def uninterrupted(demo_root, tmp_path_factory):
    """The run the disk-full tests must end up with, trained once without a fault."""
    out = tmp_path_factory.mktemp("whole")
    try:
        assert _train_cli(demo_root, out) == 0
    finally:
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    (run,) = find_runs(out)
    return run


@pytest.mark.parametrize("name,nth", [
    ("epoch2.keras", 1),  # the epoch backup (HDF5 on a full disk ended in a segmentation fault)
    ("best.keras", 1),  # the first best model: nothing of the run is committed yet
    ("log.csv", 3),  # the third epoch's log line
    ("metrics.json", 1),  # the evaluation's result, after training finished
])
def test_a_full_disk_stops_training_in_one_line_and_the_rerun_resumes_to_the_same_result(
        demo_root, tmp_path, capsys, monkeypatch, op_determinism, uninterrupted, name, nth):
    from contextlib import contextmanager

    from fer_keras import runs
    from fer_keras.train import callbacks

    real, writes = runs.replacing, []

    @contextmanager
    def disk_fills(path):
        # The nth write of `name` runs out of space half-way: its bytes are cut and ENOSPC is raised.
        with real(path) as tmp:
            yield tmp
            writes.append(Path(path).name)
            if writes.count(name) == nth and Path(path).name == name:
                tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    for module in (runs, callbacks):
        monkeypatch.setattr(module, "replacing", disk_fills)
    assert _train_cli(demo_root, tmp_path) == 2
    err = capsys.readouterr().err
    (run,) = [p.parent for p in tmp_path.rglob("config.yaml")]
    full = run / "backup" / "main" / name if name.startswith("epoch") else run / name
    assert err == (f"error: {full}: No space left on device; the run stopped at its last saved point: "
                   "free some space and run the same command again\n"), err
    assert not list(run.rglob(f".*{runs.TMP_MARK}*"))  # nothing half-written remains, not even as a temporary
    assert nth > 1 or not full.exists()  # a file written before keeps its last complete version
    state = EpochBackup(run / "backup" / "main", []).saved()
    if state:  # the commit point names a complete backup
        assert (run / "backup" / "main" / state["weights"]).is_file()
    logged = (run / "log.csv").read_text().splitlines() if (run / "log.csv").is_file() else []
    assert logged == (uninterrupted / "log.csv").read_text().splitlines()[:len(logged)]

    monkeypatch.setattr(runs, "replacing", real)
    monkeypatch.setattr(callbacks, "replacing", real)
    killed_mid_write = run / f".best{runs.TMP_MARK}123-456.keras"
    killed_mid_write.write_bytes(b"half")
    assert _train_cli(demo_root, tmp_path) == 0
    assert not killed_mid_write.exists()  # a temporary file left by a killed writer is cleared
    assert (run / "log.csv").read_text() == (uninterrupted / "log.csv").read_text()
    assert read_json(run / "metrics.json") == read_json(uninterrupted / "metrics.json")


def test_epoch_backup_restores_patience_learning_rate_and_seeds(tmp_path):
    def setup():
        model = registry.build_model("sequential_simple", 32, 3)  # has Dropout: a SeedGenerator state
        compile_model(model, 1e-3)
        model.optimizer.build(model.trainable_variables)
        patience = [keras.callbacks.ReduceLROnPlateau(patience=2), keras.callbacks.EarlyStopping(patience=5)]
        backup = EpochBackup(tmp_path / "backup", patience)
        for cb in [*patience, backup]:
            cb.set_model(model)
        return model, patience, backup

    model, (plateau, stopping), backup = setup()
    assert backup.resume_point() == (0, False)
    plateau.wait, plateau.best, plateau.cooldown_counter = 1, 0.5, 2
    stopping.wait, stopping.best, stopping.best_epoch = 3, 0.25, 1
    model.optimizer.learning_rate = 2.5e-4
    seeds = backup._random_state()
    assert seeds
    for i, v in enumerate(seeds):
        v.assign(keras.ops.convert_to_numpy(v) + i + 7)
    backup.on_epoch_end(3)
    backup.on_epoch_end(4)
    assert [f.name for f in (tmp_path / "backup").glob("epoch*")] == ["epoch5.keras"]

    fresh, (plateau2, stopping2), backup2 = setup()
    for cb in (plateau2, stopping2, backup2):
        cb.on_train_begin()  # in fit's order: the patience callbacks reset, then the backup restores
    assert backup2.resume_point() == (5, False)
    assert (plateau2.wait, plateau2.best, plateau2.cooldown_counter) == (1, 0.5, 2)
    assert (stopping2.wait, stopping2.best, stopping2.best_epoch) == (3, 0.25, 1)
    assert float(keras.ops.convert_to_numpy(fresh.optimizer.learning_rate)) == np.float32(2.5e-4)
    for a, b in zip(seeds, backup2._random_state(), strict=True):
        assert (keras.ops.convert_to_numpy(a) == keras.ops.convert_to_numpy(b)).all()
    for a, b in zip(model.weights + model.optimizer.variables, fresh.weights + fresh.optimizer.variables, strict=True):
        assert (keras.ops.convert_to_numpy(a) == keras.ops.convert_to_numpy(b)).all()
    # A backup written before backups were .keras archives (a run in progress) still restores.
    model.save_weights(tmp_path / "backup" / "epoch5.weights.h5")
    state = read_json(tmp_path / "backup" / "resume.json")
    (tmp_path / "backup" / "resume.json").write_text(json.dumps({**state, "weights": "epoch5.weights.h5"}))
    older, patience3, backup3 = setup()
    for cb in (*patience3, backup3):
        cb.on_train_begin()
    for a, b in zip(model.weights + model.optimizer.variables, older.weights + older.optimizer.variables, strict=True):
        assert (keras.ops.convert_to_numpy(a) == keras.ops.convert_to_numpy(b)).all()


def test_a_run_saved_before_a_config_key_existed_still_resumes(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path, epochs=1)
    cfg.run_dir().mkdir(parents=True)
    saved = cfg.model_dump(mode="json")
    del saved["deterministic"]
    (cfg.run_dir() / "config.yaml").write_text(yaml.safe_dump(saved))
    _check_same_run(cfg, cfg.run_dir())  # the missing key counts as its default
    with pytest.raises(ValueError, match="differs in: deterministic"):
        _check_same_run(_cfg(demo_root, tmp_path, epochs=1, deterministic=True), cfg.run_dir())


def test_a_different_config_in_the_same_run_folder_is_refused(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path, epochs=1, run_id="fixed")
    train_run(cfg, verbose=0)
    with pytest.raises(ValueError, match="differs in: lr"):
        train_run(_cfg(demo_root, tmp_path, epochs=1, run_id="fixed", lr=0.5), verbose=0)


def test_pretrained_backbone_trains_in_two_phases(demo_root, tmp_path, tiny_pretrained):
    weights = tmp_path / "cache"
    weights.mkdir()
    source = tiny_backbone((32, 32, 3), 7, pretrain="scratch", pooling="gap", weights_dir=None)
    source.get_layer("backbone").save_weights(weights / "tiny.weights.h5")
    cfg = _cfg(demo_root, tmp_path, model="tiny_pretrained", pretrain="imagenet", weights_dir=str(weights),
               phase1_epochs=1, epochs=1)
    trainable: list[int] = []  # trainable weights at the start of each phase's fit
    counter = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: trainable.append(len(counter.model.trainable_weights)))
    run = train_run(cfg, verbose=0, extra_callbacks=[counter])
    assert read_json(run / "state.json")["phases_done"] == ["frozen", "main"]
    # The frozen phase trains the head only; the main phase, in the same process, unfreezes the backbone.
    assert len(trainable) == 2 and trainable[0] < trainable[1], trainable
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
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=600)
    (run,) = find_runs(tmp_path)
    info = json.loads((run / "run_info.json").read_text())
    assert info["strategy"] == "MirroredStrategy"
    assert info["replicas"] == 2 and info["global_batch"] == 2 * FAST["batch"]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(code: str, addresses: list[str], timeout: float = 600) -> tuple[list[int | None], list[str]]:
    """Run ``code`` as one worker per address of a TF_CONFIG cluster (output to files: a full pipe would stall
    a worker). No worker outlives the call: when one fails, the others, which would wait for it, are killed."""
    cluster = {"worker": addresses}
    logs = [tempfile.TemporaryFile("w+") for _ in addresses]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], stdout=log, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, "TF_CONFIG": json.dumps(
                                  {"cluster": cluster, "task": {"type": "worker", "index": i}})})
             for i, log in enumerate(logs)]
    try:
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=60)
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    return [p.returncode for p in procs], outputs


def test_a_failed_worker_does_not_leave_the_other_running():
    code = "import sys, time\nif sys.argv[1] == '1': sys.exit(3)\nprint('waiting', flush=True)\ntime.sleep(600)"
    start = time.monotonic()
    codes, outputs = _run_workers(code, ["127.0.0.1:1", "127.0.0.1:2"], timeout=120)
    assert codes[1] == 3 and codes[0] is not None and codes[0] < 0  # the waiting worker was killed
    assert time.monotonic() - start < 60 and "waiting" in outputs[0]


#: How a worker's gRPC server says its port was taken between _free_ports and its bind.
PORT_TAKEN = ("already in use", "failed to add port", "could not start grpc server")


def test_multi_worker_strategy_from_tf_config_trains_identical_workers(demo_root, tmp_path):
    # Two worker processes on this machine, as TF_CONFIG describes a cluster; each dumps its final weights.
    code = textwrap.dedent(f"""
        import sys
        import keras
        import numpy as np
        from fer_keras.config import make_config
        from fer_keras.train.loop import train_run

        class Dump(keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                np.savez({str(tmp_path)!r} + f"/worker{{sys.argv[1]}}.npz",
                         *[keras.ops.convert_to_numpy(w) for w in self.model.weights])

        cfg = make_config({{**{FAST!r}, "data_root": {str(demo_root)!r}, "out": {str(tmp_path / "runs")!r},
                           "epochs": 1, "batch": 8}})
        train_run(cfg, verbose=0, extra_callbacks=[Dump()])
    """)
    for _attempt in range(3):  # a port found free can be taken before a worker binds it: then try new ones
        codes, outputs = _run_workers(code, [f"127.0.0.1:{port}" for port in _free_ports(2)])
        if codes == [0, 0] or not any(m in o.lower() for o in outputs for m in PORT_TAKEN):
            break
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outputs)
    first, second = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert first.files and all(np.array_equal(first[k], second[k]) for k in first.files)
    (run,) = find_runs(tmp_path / "runs")
    info = read_json(run / "run_info.json")
    # CollectiveAllReduceStrategy: the class behind tf.distribute.MultiWorkerMirroredStrategy.
    assert info["strategy"] == "CollectiveAllReduceStrategy" and info["replicas"] == 2 and info["global_batch"] == 16
    assert len((run / "log.csv").read_text().strip().splitlines()) == 2  # written once, by the chief
    # The trained run loads like any other: the chief's checkpoint is the workers' common model.
    best = [keras.ops.convert_to_numpy(w) for w in Run(run).model().weights]
    assert all(np.array_equal(w, first[k]) for w, k in zip(best, first.files, strict=True))


def test_legacy_pipeline_trains_a_run(demo_root, tmp_path):
    run = train_run(_cfg(demo_root, tmp_path, epochs=1, pipeline="legacy", limit_per_class=6), verbose=0)
    assert read_json(run / "run_info.json")["pipeline"] == "legacy"
    assert read_json(run / "metrics.json")["val"]["n"] > 0
