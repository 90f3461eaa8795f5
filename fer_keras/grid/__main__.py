"""``python -m fer_keras.grid GRID.yaml``: run every missing point of an experiment grid.

``--dry-run`` lists the runs (with their state: pending, running, stale, failed, done,
complete, ...) and the skipped combinations without training anything. ``--only KEY=VALUE``
runs part of a grid under the grid's own run ids (one model, one fold). ``--shard i/n``
(0-based: 0/4 .. 3/4; or a SLURM job array) runs one disjoint slice; several workers may
also share one grid without shards: per-run locks keep them apart.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from fer_keras.console import CommandParser, quiet_tensorflow
from fer_keras.grid.lock import RunLock
from fer_keras.grid.runner import crossdomain_target, default_train, is_complete, run_grid, run_state
from fer_keras.grid.shard import parse_shard, select, shard_from_env
from fer_keras.grid.spec import Grid, load_grid, only, parse_only
from fer_keras.registry import import_object
from fer_keras.runs import Run, check_writable, write_error_line


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="fer-grid", description=__doc__.splitlines()[0])
    p.add_argument("grid", help="grid file, e.g. experiments/demo.yaml")
    p.add_argument("--dry-run", action="store_true", help="list runs and run ids; train nothing")
    p.add_argument("--shard", help="i/n, 0-based (0/4 .. 3/4): run slice i of n "
                                   "(default: SLURM_ARRAY_TASK_ID/COUNT, else all)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only the points with this setting (repeat: a key twice = either value), e.g. "
                        "--only model=resnet18 --only cv_group=null; run ids stay the grid's")
    p.add_argument("--retries", type=int, default=0, help="retry a failed run this many times (default 0)")
    p.add_argument("--skip-failed", action="store_true", help="do not retry runs that failed in earlier calls")
    p.add_argument("--trainer", default=None, metavar="MODULE:FUNCTION",
                   help="train function taking a RunConfig (default fer_keras.train.loop.train_run)")
    return p


def _trainer(spec: str | None):
    if not spec:
        return default_train
    return import_object(spec)


def describe(grid: Grid, points, shard, chosen: int | None = None) -> str:
    lines = [f"grid {grid.path}: {len(grid.points)} run(s)"
             + (f", {chosen} chosen by --only" if chosen is not None and chosen != len(grid.points) else "")
             + (f", shard {shard[0]}/{shard[1]}: {len(points)}" if shard else "")]
    lines += [f"note: {n}" for n in grid.notes]
    width = max(len(p.run_id) for p in points) if points else 10
    for i, p in enumerate(points):
        state = "complete" if is_complete(p, generate=False) else run_state(p.run_dir)
        if state == "running":
            state += f" ({RunLock(p.run_dir).holder()})"
        elif state == "stale":
            state += (f" (status says running, but {RunLock(p.run_dir).holder()} is gone: killed? "
                      "the next grid call resumes it)")
        lines.append(f"{i:>4}  {p.run_id:<{width}}  {state}")
    if grid.skipped:
        reasons = Counter(why for _, why in grid.skipped)
        lines.append(f"skipped {len(grid.skipped)} unsupported combination(s):")
        lines += [f"  {n:>4} x {why}" for why, n in reasons.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        shard = parse_shard(args.shard) if args.shard else shard_from_env()
        grid = load_grid(args.grid)
        chosen = only(grid.points, parse_only(args.only))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    quiet_tensorflow(args.verbose)  # after the checks: a mistake in the grid file is reported without TensorFlow
    points = select(chosen, shard, key=lambda p: p.run_id)
    print(describe(grid, points, shard, chosen=len(chosen)))
    if args.dry_run:
        return 0
    try:
        for out in sorted({p.cfg.out for p in points}):
            check_writable(out)
        outcomes = run_grid(grid, points, train=_trainer(args.trainer), retries=args.retries,
                            skip_failed=args.skip_failed)
    except OSError as err:  # a full or read-only file system stops the grid: one line, not a traceback
        print(f"error: {write_error_line(err, what='the grid')}", file=sys.stderr)
        return 2
    counts = Counter(o.state for o in outcomes)
    print("[grid] " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for o in outcomes:
        if o.state == "failed":
            print(f"[grid] failed: {o.run_id}: {o.error}", file=sys.stderr)
    finished = {p.run_dir: crossdomain_target(p.cfg, generate=False) for p in points if Run(p.run_dir).is_finished()}
    if finished:
        from fer_keras.evaluate.crossdomain import table as results_table  # here: its imports take seconds

        print(f"\n{results_table(finished)}\n")
        print("full report: " + "; ".join(f"make report OUT={out}" for out in sorted({str(p.cfg.out) for p in points})))
    return 1 if counts.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
