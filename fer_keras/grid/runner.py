"""Run the points of a grid: every missing result once, whatever was killed before.

A point is *complete* when its run is finished (``metrics.json`` and ``best.keras``)
and, if its config names a cross-domain set that exists, that set's result is there.
Complete points are skipped; an unfinished run resumes where it stopped (train_run
resumes); a finished run lacking its cross-domain result is only evaluated. Each
point is trained under its lock (``lock.py``); its ``status.json`` says what happened
(running, done, failed with the error, interrupted). A worker killed without a chance to
write (SIGKILL, a lost node) leaves "running" behind: :func:`run_state` reports it as
*stale*, and the next worker to take the run says so and resumes it. A failure is
recorded and the grid goes on; ``failures.json`` beside the runs lists every failed
point of the grid. A full (or read-only) file system stops the grid instead: every
later run would fail the same way. All files are written atomically, so the process
can be killed at any moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fer_keras.config import RunConfig
from fer_keras.console import progress_verbosity
from fer_keras.data.demo import ensure_demo
from fer_keras.grid.lock import RunLock
from fer_keras.grid.spec import Grid, Point
from fer_keras.runs import DISK_FULL, Run, write_json
from fer_keras.timing import Stopwatch

FAILURES_FILE = "failures.json"
#: Cross-domain sets generated on demand (the synthetic demo).
GENERATED_SETS = ("demo_wild",)

TrainFn = Callable[[RunConfig], object]
CrossFn = Callable[[Path, Path], object]


@dataclass
class Outcome:
    run_id: str
    state: str  # done | complete (already) | locked (another worker) | failed
    seconds: float = 0.0
    error: str | None = None


def default_train(cfg: RunConfig) -> object:
    from fer_keras.train.loop import train_run  # here: expanding and checking a grid never imports TensorFlow

    return train_run(cfg, verbose=progress_verbosity())


def default_crossdomain(run_dir: Path, data: Path) -> object:
    from fer_keras.evaluate.crossdomain import evaluate_crossdomain  # here: its imports take seconds

    return evaluate_crossdomain(run_dir, data)


def crossdomain_target(cfg: RunConfig, *, generate: bool = True) -> Path | None:
    """The cross-domain set a point must be evaluated on: configured and present (or generated)."""
    path = cfg.crossdomain_dir()
    if path is None:
        return None
    if generate and not path.is_dir() and path.name in GENERATED_SETS:
        ensure_demo(path.parent)
    return path if path.is_dir() else None


def is_complete(point: Point, *, generate: bool = True) -> bool:
    run = Run(point.run_dir)
    if not run.is_finished():
        return False
    target = crossdomain_target(point.cfg, generate=generate)
    return target is None or run.crossdomain_file(target.name).is_file()


def run_state(run_dir: Path) -> str:
    """The run's state from ``status.json`` ("pending" without one), except that "running" whose lock
    no live process holds is "stale": its worker was killed before it could say so."""
    state = Run(run_dir).status().get("state", "pending")
    if state == "running" and not RunLock(run_dir).holder_alive():
        return "stale"
    return state


def stops_grid(err: BaseException) -> bool:
    """A file system that is full or read-only: every later run of the grid would fail the same way."""
    return isinstance(err, OSError) and err.errno in (*DISK_FULL, errno.EROFS)


def _set_status(run_dir: Path, **changes) -> dict:
    run = Run(run_dir)
    status = {**run.status(), **changes, "host": socket.gethostname(), "pid": os.getpid(),
              "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(run.status_file, status)
    return status


def _free_memory() -> None:
    # Many models in one process: drop Keras' graph state between runs (only if Keras is loaded).
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


def run_point(point: Point, *, train: TrainFn = default_train, crossdomain: CrossFn = default_crossdomain,
              attempts: int = 1, log: Callable[[str], None] = print) -> Outcome:
    """Train and evaluate one point under its lock; never raises for a failed run."""
    if is_complete(point):
        return Outcome(point.run_id, "complete")
    lock = RunLock(point.run_dir)
    if not lock.acquire():
        log(f"[grid] {point.run_id}: locked by {lock.holder()}; left to that worker")
        return Outcome(point.run_id, "locked")
    with lock:
        if is_complete(point):  # another worker finished it while we were checking
            return Outcome(point.run_id, "complete")
        status = Run(point.run_dir).status()
        if status.get("state") == "running":  # we hold the lock, so its writer is gone
            log(f"[grid] {point.run_id}: stale: pid {status.get('pid')} on {status.get('host')} stopped without "
                f"a word (killed?) while running since {status.get('started')}; resuming it")
        error = None
        clock = Stopwatch()
        for attempt in range(1, attempts + 1):
            tries = Run(point.run_dir).status().get("attempts", 0) + 1
            _set_status(point.run_dir, state="running", attempts=tries, started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                        error=None)
            log(f"[grid] {point.run_id}: training (attempt {attempt}/{attempts})")
            try:
                if not Run(point.run_dir).is_finished():
                    train(point.cfg)
                target = crossdomain_target(point.cfg)
                if target is not None and not Run(point.run_dir).crossdomain_file(target.name).is_file():
                    crossdomain(point.run_dir, target)
            except (KeyboardInterrupt, SystemExit):
                _set_status(point.run_dir, state="interrupted")
                raise
            except Exception as err:  # a failed run must not stop the grid, unless the disk is full
                error = f"{type(err).__name__}: {err}"
                if stops_grid(err):
                    with contextlib.suppress(OSError):  # the status may not fit on the disk either
                        _set_status(point.run_dir, state="failed", error=error)
                    raise
                _set_status(point.run_dir, state="failed", error=error,
                            traceback=traceback.format_exc().splitlines()[-25:])
                log(f"[grid] {point.run_id}: FAILED ({error})")
                continue
            finally:
                _free_memory()
            seconds = round(clock.seconds, 1)
            _set_status(point.run_dir, state="done", seconds=seconds, traceback=None)
            return Outcome(point.run_id, "done", seconds)
        return Outcome(point.run_id, "failed", round(clock.seconds, 1), error)


def write_failures(grid: Grid) -> Path | None:
    """``failures.json`` in each runs folder of the grid: every point whose last attempt failed."""
    written = None
    by_out: dict[Path, dict] = {}
    for point in grid.points:
        failures = by_out.setdefault(point.cfg.out, {})
        status = Run(point.run_dir).status()
        if status.get("state") == "failed":
            failures[point.run_id] = {k: status.get(k) for k in ("error", "attempts", "host", "updated")}
    for out, failures in by_out.items():
        out.mkdir(parents=True, exist_ok=True)
        written = out / FAILURES_FILE
        write_json(written, failures)
    return written


def write_manifest(grid: Grid) -> None:
    """``grid_<name>.json`` beside the runs: the report shows points without results as blanks."""
    for out in {p.cfg.out for p in grid.points}:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / f"grid_{grid.name}.json", grid.manifest())


def run_grid(grid: Grid, points: list[Point] | None = None, *, train: TrainFn = default_train,
             crossdomain: CrossFn = default_crossdomain, retries: int = 0, skip_failed: bool = False,
             log: Callable[[str], None] = print) -> list[Outcome]:
    """Run ``points`` (default: all of the grid), skipping complete ones; return what happened."""
    points = grid.points if points is None else points
    write_manifest(grid)
    outcomes = []
    previous = signal.getsignal(signal.SIGTERM)
    handled = previous in (signal.SIG_DFL, None) and threading.current_thread() is threading.main_thread()
    if handled:
        # SLURM and `kill` send SIGTERM: unwind so the run's status says 'interrupted'.
        signal.signal(signal.SIGTERM, _terminate)
    try:
        for n, point in enumerate(points, 1):
            if skip_failed and Run(point.run_dir).status().get("state") == "failed":
                outcomes.append(Outcome(point.run_id, "failed", error="skipped (failed before)"))
                continue
            log(f"[grid] {n}/{len(points)} {point.run_id}")
            outcomes.append(run_point(point, train=train, crossdomain=crossdomain, attempts=1 + retries, log=log))
    except BaseException:
        with contextlib.suppress(OSError):  # the error that stopped the grid is the one to report
            write_failures(grid)
        raise
    else:
        write_failures(grid)
    finally:
        if handled:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return outcomes


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)
