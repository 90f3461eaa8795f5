"""Experiment grids: expansion, validation, resume after a crash, failures, locks and shards.

Training is faked (tests/grid_fakes.py) where a test is about orchestration; the one
real tiny run is in test_grid_e2e.py.
"""

import errno
import json
import os
import re
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from grid_fakes import fake_train

from fer_keras import registry, runs
from fer_keras.grid import __main__ as cli
from fer_keras.grid.lock import RunLock
from fer_keras.grid.runner import run_grid, run_point, run_state
from fer_keras.grid.shard import parse_shard, select, shard_from_env
from fer_keras.grid.spec import GridError, expand, load_grid
from fer_keras.runs import Run, read_json, write_json

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
PAPER_MODELS = ["vgg16", "vgg19", "vggnet", "repvgg", "mobilenet", "mobilenet_v2", "efficientnet_v2_b0", "resnet18",
                "resnet50", "nasnet_mobile", "densenet121", "googlenet", "inception_v3", "xception", "senet50",
                "lenet5", "alexnet", "zfnet", "sequential_3conv", "sequential_4conv", "sequential_simple",
                "ensemble", "modular", "smmb"]


@pytest.fixture
def imagenet_only(monkeypatch):
    """A registered model with ImageNet but no VGGFace weights, and a 64 px minimum resolution."""
    spec = registry.ModelSpec(name="tiny_imagenet", builder=lambda *a, **k: None, family="test", paper_name="-",
                              description="test-only", min_resolution=64, pretrains=("scratch", "imagenet"))
    monkeypatch.setitem(registry._REGISTRY, "tiny_imagenet", spec)


def _grid(tmp_path, **sections) -> Path:
    fixed = {"out": str(tmp_path / "runs"), "crossdomain": None, "dataset": "demo", **sections.pop("fixed", {})}
    data = {"fixed": fixed, **sections}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_expansion_with_excludes_includes_and_unsupported_combinations(tmp_path, imagenet_only):
    grid = load_grid(_grid(
        tmp_path,
        grid={"model": ["sequential_simple", "tiny_imagenet"], "balance": ["simple", "conservative"],
              "pretrain": ["scratch", "imagenet", "vggface"]},
        exclude=[{"model": "tiny_imagenet", "balance": "simple"}, {"balance": "conservatve"}],
        include=[{"model": "sequential_simple", "balance": "none", "res": 96, "lr": 0.01}],
    ))
    ids = [p.run_id for p in grid.points]
    assert ids == sorted(ids)
    assert set(ids) == {
        "sequential_simple_48_demo_simple_scratch_s42", "sequential_simple_48_demo_conservative_scratch_s42",
        "sequential_simple_96_demo_none_scratch_s42_lr0.01",  # lr is not in the default id: appended
    }
    # tiny_imagenet needs 64 px: every 48 px point of it is skipped with the registry's reason.
    assert grid.notes == ["exclude[1] {'balance': 'conservatve'} matches no point of the grid (a misspelt value?)"]
    reasons = " ".join(why for _, why in grid.skipped)
    assert "cannot take 48x48" in reasons and "has no 'vggface' initialisation" in reasons
    point = next(p for p in grid.points if p.run_id.endswith("_lr0.01"))
    assert point.cfg.lr == 0.01 and point.cfg.res == 96 and point.run_dir == tmp_path / "runs" / point.run_id

    at_64 = load_grid(_grid(tmp_path, fixed={"res": 64},
                            grid={"model": ["tiny_imagenet"], "pretrain": ["scratch", "imagenet", "vggface"]}))
    assert [p.cfg.pretrain for p in at_64.points] == ["imagenet", "scratch"]
    assert len(at_64.skipped) == 1
    with pytest.raises(GridError, match="no 'vggface' initialisation"):
        load_grid(_grid(tmp_path, fixed={"res": 64}, unsupported="error",
                        grid={"model": ["tiny_imagenet"], "pretrain": ["scratch", "vggface"]}))


@pytest.mark.parametrize("sections, message", [
    ({"gird": {"model": ["resnet18"]}}, "unknown top-level key 'gird'; did you mean 'grid'"),
    ({"epochs": 3}, "'epochs' is a run setting: put it under 'fixed:'"),
    ({"grid": {"balanse": ["simple"]}}, "grid: unknown key 'balanse'; did you mean 'balance'"),
    ({"exclude": [{"modle": "resnet18"}]}, "exclude.0.: unknown key 'modle'; did you mean 'model'"),
    ({"grid": {"model": ["resnet_18", "sequential_simple"]}}, "unknown model 'resnet_18'. Did you mean 'resnet18'"),
    ({"grid": {"balance": ["simple", "balanced"]}}, r"balance: .*got 'balanced'"),
    ({"grid": {"res": 48}}, "'res' must be a non-empty list"),
    ({"grid": {"seed": [1, 1]}}, "lists a value twice"),
    ({"grid": {"out": ["a", "b"]}}, "'out' cannot be varied"),
    ({"cv": 1}, "cv must be a whole number of folds >= 2"),
    ({"grid": {"balance": ["simple"]}, "exclude": [{"balance": "simple"}]}, "expands to no run"),
])
def test_invalid_grids_fail_before_any_run_with_a_clear_message(tmp_path, sections, message):
    with pytest.raises(GridError, match=message):
        load_grid(_grid(tmp_path, **sections))
    assert not (tmp_path / "runs").exists()


def test_dry_run_lists_run_ids_and_trains_nothing(tmp_path, capsys):
    path = _grid(tmp_path, grid={"balance": ["simple", "conservative"], "pretrain": ["scratch", "imagenet"]},
                 fixed={"model": "sequential_simple"})
    assert cli.main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s)" in out and re.search(r"sequential_simple_48_demo_simple_scratch_s42 +pending", out)
    assert "skipped 2 unsupported combination(s)" in out
    assert not (tmp_path / "runs").exists()
    assert cli.main([str(path), "--dry-run", "--shard", "1/2"]) == 0
    assert "shard 1/2: 1" in capsys.readouterr().out
    assert cli.main([str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _four_points(tmp_path):
    return load_grid(_grid(tmp_path, fixed={"model": "sequential_simple"},
                           grid={"balance": ["simple", "conservative"], "seed": [1, 2]}))


def test_resume_after_a_crash_mid_grid_redoes_nothing_finished(tmp_path):
    grid = _four_points(tmp_path)
    trained = []

    def crash_on_third(cfg):
        trained.append(cfg.resolved_run_id())
        if len(trained) == 3:
            cfg.run_dir().mkdir(parents=True, exist_ok=True)
            (cfg.run_dir() / "config.yaml").write_text("half a run\n")  # killed mid-training
            raise KeyboardInterrupt
        return fake_train(cfg)

    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, train=crash_on_third, log=lambda _: None)
    third = grid.points[2]
    assert [Run(p.run_dir).is_finished() for p in grid.points] == [True, True, False, False]
    assert Run(third.run_dir).status()["state"] == "interrupted"

    again = []
    outcomes = run_grid(grid, train=lambda cfg: again.append(cfg.resolved_run_id()) or fake_train(cfg),
                        log=lambda _: None)
    assert again == [p.run_id for p in grid.points[2:]]
    assert [o.state for o in outcomes] == ["complete", "complete", "done", "done"]
    assert Run(third.run_dir).status() | {"attempts": 2} == Run(third.run_dir).status()
    assert read_json(tmp_path / "runs" / "grid_grid.json")["points"][0]["run_id"] == grid.points[0].run_id


def test_failures_are_recorded_retried_and_do_not_stop_the_grid(tmp_path, monkeypatch, capsys):
    grid = _four_points(tmp_path)
    bad = grid.points[1].run_id
    monkeypatch.setenv("FAKE_TRAIN_FAIL", bad)
    outcomes = run_grid(grid, train=fake_train, retries=1, log=lambda _: None)
    assert [o.state for o in outcomes] == ["done", "failed", "done", "done"]
    status = Run(grid.points[1].run_dir).status()
    assert status["state"] == "failed" and status["attempts"] == 2 and "simulated failure" in status["error"]
    assert list(read_json(tmp_path / "runs" / "failures.json")) == [bad]
    assert cli.main([str(grid.path), "--skip-failed", "--trainer", "grid_fakes:fake_train"]) == 1
    monkeypatch.delenv("FAKE_TRAIN_FAIL")
    capsys.readouterr()
    assert cli.main([str(grid.path), "--trainer", "grid_fakes:fake_train"]) == 0
    # The grid ends with its results: every run with its accuracies, then where the full report comes from.
    table = capsys.readouterr().out.split("[grid] ")[-1].splitlines()
    assert "val acc" in table[2] and all(any(p.run_id in line for line in table) for p in grid.points)
    assert table[-1] == f"full report: make report OUT={tmp_path / 'runs'}"
    assert read_json(tmp_path / "runs" / "failures.json") == {}


def test_a_locked_run_is_left_to_its_holder_and_threads_never_share_a_run(tmp_path, monkeypatch):
    grid = _four_points(tmp_path)
    point = grid.points[0]
    lock = RunLock(point.run_dir)
    assert lock.acquire()
    assert not RunLock(point.run_dir).acquire()
    assert run_point(point, train=fake_train, log=lambda _: None).state == "locked"
    lock.release()

    log = tmp_path / "trained.log"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(log))
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0.2")
    workers = [threading.Thread(target=run_grid, args=(grid,), kwargs={"train": fake_train, "log": lambda _: None})
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    trained = [line.split()[1] for line in log.read_text().splitlines()]
    assert sorted(trained) == [p.run_id for p in grid.points]  # each exactly once


def test_shards_are_disjoint_stable_and_read_from_slurm():
    assert parse_shard("2/4") == (2, 4) and parse_shard("0/1") == (0, 1)
    for bad, says in [("-1/2", "need 0 <= i < n"), ("5/4", "shards are numbered from 0: 0/4 .. 3/4"),
                      ("1", "numbered from 0 (e.g. 0/4 .. 3/4)"), ("a/b", "must look like i/n"),
                      ("0/0", "must be at least 1")]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_shard(bad)
    with pytest.raises(ValueError, match=re.escape("'4/4': shards are numbered from 0, so the 4 shards are "
                                                   "0/4 .. 3/4; from a 1-based index (such as SLURM_ARRAY_TASK_ID "
                                                   "of --array=1-4) pass i-1")):
        parse_shard("4/4")
    # A job array's tasks are shards 0..n-1 by position, whatever the array's first id and step.
    for first, step in [(0, 1), (1, 1), (10, 5)]:
        ids = [first + step * k for k in range(3)]
        env = {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": str(first), "SLURM_ARRAY_TASK_STEP": str(step)}
        assert [shard_from_env({**env, "SLURM_ARRAY_TASK_ID": str(i)}) for i in ids] == [(0, 3), (1, 3), (2, 3)]
    with pytest.raises(ValueError, match="not one of 3 evenly spaced tasks"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0"})
    assert shard_from_env({}) is None
    ids = [f"run{i:02d}" for i in range(11)]
    slices = [select(ids[::-1], (i, 3)) for i in range(3)]
    assert sorted(sum(slices, [])) == ids and sum(map(len, slices)) == len(ids)
    assert select(ids, (1, 3)) == slices[1]  # the input order does not matter


def test_two_shards_in_two_processes_cover_the_grid_once(tmp_path):
    grid = load_grid(_grid(tmp_path, fixed={"model": "sequential_simple"},
                           grid={"balance": ["none", "simple", "conservative"], "seed": [1, 2, 3]}))
    log = tmp_path / "trained.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "FAKE_TRAIN_LOG": str(log),
           "FAKE_TRAIN_SLEEP": "0.1"}
    procs = [subprocess.Popen([sys.executable, "-m", "fer_keras.grid", str(grid.path), "--shard", f"{i}/2",
                               "--trainer", "grid_fakes:fake_train"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:  # a shard that failed or hung must not outlive the test
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=60)
    assert [p.returncode for p in procs] == [0, 0], outputs
    by_pid: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        pid, run_id = line.split()
        by_pid.setdefault(pid, []).append(run_id)
    assert len(by_pid) == 2
    first, second = by_pid.values()
    assert not set(first) & set(second)
    assert sorted(first + second) == [p.run_id for p in grid.points]
    assert all(Run(p.run_dir).is_finished() for p in grid.points)


def test_shipped_grids_validate(tmp_path):
    demo = load_grid(ROOT / "experiments" / "demo.yaml")
    assert 2 <= len(demo.points) <= 3
    registered = set(registry.list_models())
    for res in (48, 224):
        path = ROOT / "experiments" / f"paper_{res}.yaml"
        data = yaml.safe_load(path.read_text())
        assert data["grid"]["model"] == PAPER_MODELS
        assert data["grid"]["dataset"] == ["rafdb", "fer2013", "affectnet"]
        assert data["grid"]["balance"] == ["simple", "conservative"]
        assert data["fixed"]["res"] == res and data["fixed"]["crossdomain"] == "btfer"
        assert set(PAPER_MODELS) <= registered
        grid = load_grid(path)
        # Every paper model that takes this resolution runs; the others are skipped with the reason.
        assert {p.cfg.model for p in grid.points} == {m for m in PAPER_MODELS if registry.get_spec(m).supports(res)}
        assert all(p.cfg.res == res for p in grid.points)


def test_shipped_cpu_grid_is_the_48px_fer2013_points_a_cpu_finishes():
    grid = load_grid(ROOT / "experiments" / "paper_48_cpu.yaml")
    assert {(p.cfg.model, p.cfg.balance) for p in grid.points} == {
        (m, b) for m in ("sequential_simple", "sequential_3conv", "sequential_4conv", "lenet5", "ensemble", "modular")
        for b in ("conservative", "simple")}
    assert not grid.skipped
    cfg = grid.points[0].cfg
    assert (cfg.res, Path(cfg.dataset).name, cfg.crossdomain, cfg.pretrain) == (48, "fer2013", "btfer", "scratch")
    assert (cfg.early_stopping_patience, cfg.lr, cfg.batch) == (20, 1e-4, 32)


def test_cross_validation_points_get_one_run_per_fold(tmp_path):
    grid = expand({"fixed": {"model": "sequential_simple", "out": str(tmp_path)}, "grid": {"seed": [1, 2]}, "cv": 3})
    assert len(grid.points) == 6
    p = grid.points[0]
    assert p.run_id == "sequential_simple_48_demo_conservative_scratch_s1_f0" and p.group == p.run_id[:-3]
    assert (p.cfg.folds, p.cfg.fold) == (3, 0) and p.cfg.resolved_run_id() == p.run_id


def test_only_runs_part_of_a_grid_under_its_own_run_ids(tmp_path, capsys, monkeypatch):
    path = _grid(tmp_path, fixed={"model": "sequential_simple"},
                 grid={"balance": ["simple", "conservative"], "seed": [1, 2]}, cv=2)
    full = load_grid(path)
    log = tmp_path / "trained.log"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(log))
    args = [str(path), "--trainer", "grid_fakes:fake_train", "--only", "seed=2", "--only", "balance=simple"]
    assert cli.main([*args, "--only", "fold=1"]) == 0
    wanted = [p.run_id for p in full.points if p.cfg.seed == 2 and p.cfg.balance == "simple" and p.cfg.fold == 1]
    assert [line.split()[1] for line in log.read_text().splitlines()] == wanted
    assert "8 run(s), 1 chosen by --only" in capsys.readouterr().out
    # A key given twice keeps either value; the full grid then finds the part already trained.
    assert cli.main([*args, "--only", "seed=1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 chosen by --only" in out and out.count("complete") == 1 and out.count("pending") == 3
    assert cli.main([str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("complete") == 1
    for bad, says in [("seeds=1", "unknown key 'seeds'; did you mean 'seed'"), ("seed", "write KEY=VALUE"),
                      ("seed=3", "seed=3: no run of the grid has it; its seed values: 1, 2"),
                      ("seed=[1, 3]", "seed=3: no run"),  # a typo beside a right value is not dropped quietly
                      ("seed=true", "seed is not a yes/no setting"), ("balance=nonee", "not a value of balance"),
                      ("lr=1e-2", "lr=0.01: no run")]:
        assert cli.main([str(path), "--only", bad]) == 2
        assert re.search(says, capsys.readouterr().err)
    assert log.read_text().count("\n") == 1
    assert cli.main([str(path), "--dry-run", "--only", "lr=1e-4", "--only", "cv_group=null"]) == 0  # typed as in a grid
    assert "8 run(s)\n" in capsys.readouterr().out


def _dead_pid() -> int:
    """The pid of a process that surely no longer exists: started, ended and reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def _claim(run_dir: Path, pid: int, host: str | None = None) -> None:
    """What a worker killed with SIGKILL leaves: its status says running, its lock file names it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    host = host or socket.gethostname()
    (run_dir / ".lock").write_text(json.dumps({"host": host, "pid": pid, "since": "2026-01-01T00:00:00"}))
    write_json(run_dir / "status.json", {"state": "running", "pid": pid, "host": host, "started": "2026-01-01"})


def test_a_killed_workers_running_status_is_reported_stale_and_a_live_one_running(tmp_path, capsys):
    grid = _four_points(tmp_path)
    dead, live, remote, remote_held = (p.run_dir for p in grid.points)
    _claim(dead, _dead_pid())
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom fer_keras.grid.lock import RunLock\n"
                               f"assert RunLock({str(live)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(600)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == "held\n"
        write_json(live / "status.json", {"state": "running", "pid": holder.pid, "host": socket.gethostname()})
        _claim(remote, 1, host="another-node")  # no process holds its lock
        _claim(remote_held, 1, host="another-node")
        lock = RunLock(remote_held)
        assert lock.acquire()  # held here, but the file still names the other node
        (remote_held / ".lock").write_text(json.dumps({"host": "another-node", "pid": 1, "since": "-"}))
        assert [run_state(p.run_dir) for p in grid.points] == ["stale", "running", "stale", "running"]
        assert cli.main([str(grid.path), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert re.search(rf"{grid.points[0].run_id} +stale \(status says running, but pid \d+ on .* is gone: killed\? "
                         r"the next grid call resumes it\)", out), out
        assert re.search(rf"{grid.points[1].run_id} +running \(pid {holder.pid} on ", out), out
        lock.release()
        logged = []
        outcomes = run_grid(grid, train=fake_train, log=logged.append)
    finally:
        holder.kill()
        holder.wait()
    assert [o.state for o in outcomes] == ["done", "locked", "done", "done"]
    assert any(line.startswith(f"[grid] {grid.points[0].run_id}: stale: pid ") and line.endswith("resuming it")
               for line in logged), logged
    assert Run(dead).status()["state"] == "done" and run_state(live) == "stale"  # its holder was killed just now


def test_a_full_disk_stops_the_grid_in_one_line_and_the_rerun_finishes_it(tmp_path, capsys, monkeypatch):
    grid = _four_points(tmp_path)
    real, full = runs.replacing, grid.points[1].run_dir / "metrics.json"

    @contextmanager
    def disk_fills(path):  # the second run's result does not fit on the disk
        with real(path) as tmp:
            yield tmp
            if Path(path) == full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(runs, "replacing", disk_fills)
    assert cli.main([str(grid.path), "--trainer", "grid_fakes:fake_train"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {full}: No space left on device; the grid stopped at "
                   "its last saved point: free some space and run the same command again\n"), err
    assert [Run(p.run_dir).is_finished() for p in grid.points] == [True, False, False, False]  # it stopped at once
    assert Run(grid.points[1].run_dir).status()["state"] == "failed"
    monkeypatch.setattr(runs, "replacing", real)
    assert cli.main([str(grid.path), "--trainer", "grid_fakes:fake_train"]) == 0
    assert all(Run(p.run_dir).is_finished() for p in grid.points)


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_grids_expand(path, monkeypatch):
    """Every grid under experiments/ validates and expands (its base config found from the repository root)."""
    monkeypatch.chdir(ROOT)
    assert load_grid(path.relative_to(ROOT)).points
