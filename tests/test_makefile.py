"""The Makefile passes a flag only when its variable is set, so the config file and RunConfig decide the rest."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VARIABLES = ("CONFIG", "DATA", "OUT", "REAL", "REPORT", "QUANT", "FORMAT", "BENCH_OUT", "ARGS", "MAKEFLAGS", "ONLY",
             "SHARD", "GRID")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(*args: str) -> str:
    """The commands ``make -n`` would run, with none of the Makefile's variables inherited from the shell."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    done = subprocess.run(["make", "-n", "-C", str(REPO), *args], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    return " ".join(done.stdout.split())


def test_train_with_a_config_uses_its_dataset():
    # The old Makefile always passed --dataset demo, so this trained on the demo set.
    cmd = dry_run("train", "CONFIG=configs/protocol.yaml")
    assert "--config configs/protocol.yaml" in cmd
    assert "--dataset" not in cmd and "--out" not in cmd


def test_plain_train_runs_the_demo_and_data_overrides():
    assert "--config configs/demo.yaml" in dry_run("train")
    assert "--dataset" not in dry_run("train")
    cmd = dry_run("train", "DATA=fer2013")
    assert "--config configs/protocol.yaml" in cmd and "--dataset fer2013" in cmd
    assert "--config configs/demo.yaml --dataset demo" in dry_run("train", "DATA=demo")


@pytest.mark.parametrize("target,absent", [
    ("crossdomain", "--runs"), ("report", "--runs"), ("report", "--out"), ("realcheck", "--data"),
    ("export RUN=x", "--quant"), ("export RUN=x", "--runs"), ("bench", "--out"),
])
def test_unset_variables_pass_no_flag(target, absent):
    assert absent not in dry_run(*target.split()).split()


def test_set_variables_pass_their_flag():
    assert "--runs r" in dry_run("crossdomain", "OUT=r")
    assert "--runs r --out p" in dry_run("report", "OUT=r", "REPORT=p")


def test_grid_passes_each_only_setting():
    cmd = dry_run("grid-dry", "ONLY=model=esr cv_group=null")
    assert "--dry-run --only 'model=esr' --only 'cv_group=null'" in cmd
    # Quoted for the shell: the CK+ grid's subject pattern holds brackets and a backslash.
    assert r"--only 'cv_group=^(S\d+)_'" in dry_run("grid-dry", r"ONLY=cv_group=^(S\d+)_")
    assert "--only" not in dry_run("grid")
