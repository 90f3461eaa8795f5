"""``make crossdomain``: evaluate finished runs on a balanced in-the-wild test set (BTFER).

Every finished run under ``--runs`` that has no result for the set yet is evaluated
once, on every image of the set, with the class order the run was trained with
(checked against the set's classes before any prediction). Results go to
``crossdomain_<set>.json`` in the run folder; a table of all runs is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_keras.config import RunConfig, make_config
from fer_keras.data.demo import ensure_demo
from fer_keras.data.readers import evaluation_set
from fer_keras.labels import check_same_classes
from fer_keras.runs import CLASSES_FILE, crossdomain_file, find_runs, load_run_model, read_json, write_json


def run_config(run_dir: Path) -> RunConfig:
    import yaml

    return make_config(yaml.safe_load((run_dir / "config.yaml").read_text()), source=str(run_dir / "config.yaml"))


def evaluate_crossdomain(run_dir: Path, data: Path, *, force: bool = False) -> dict | None:
    """Evaluate one run on ``data``; None when a result already exists and not ``force``."""
    from fer_keras.evaluate.evaluator import evaluate_set

    out = crossdomain_file(run_dir, data.name)
    if out.is_file() and not force:
        return None
    cfg = run_config(run_dir)
    classes = read_json(run_dir / CLASSES_FILE)
    images = evaluation_set(data)
    check_same_classes(classes, images.class_names, test_name=str(data))
    model = load_run_model(run_dir)
    m = evaluate_set(model, images, cfg.res, pipeline=cfg.pipeline, out_dir=run_dir, tag=f"crossdomain_{data.name}")
    m["skipped"] = images.summary()["skipped_files"]
    write_json(out, m)
    return m


def default_set(runs: list[Path]) -> Path | None:
    """The cross-domain set named in the runs' configs (the first one found)."""
    for run in runs:
        cfg = run_config(run)
        if cfg.crossdomain_dir() is not None:
            return cfg.crossdomain_dir()
    return None


def table(runs: list[Path], set_name: str) -> str:
    head = f"{'run':<58}{'val acc':>9}{'test acc':>10}{'cross acc':>11}{'cross F1m':>11}"
    lines = [head, "-" * len(head)]
    for run in runs:
        m = read_json(run / "metrics.json")
        cross = crossdomain_file(run, set_name)
        c = read_json(cross) if cross.is_file() else {}
        f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"{run.name:<58}{f(m.get('val', {}).get('accuracy')):>9}"
                     f"{f(m.get('test', {}).get('accuracy')):>10}{f(c.get('accuracy')):>11}"
                     f"{f(c.get('f1_macro')):>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fer-crossdomain", description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs", help="folder holding run folders (default: runs)")
    p.add_argument("--data", help="balanced test set folder (default: the runs' configured crossdomain set)")
    p.add_argument("--force", action="store_true", help="re-evaluate runs that already have a result")
    args = p.parse_args(argv)
    runs = find_runs(Path(args.runs))
    if not runs:
        print(f"no finished runs under {args.runs}")
        return 0
    data = Path(args.data) if args.data else default_set(runs)
    if data is None:
        print("error: no cross-domain set given (--data) or configured in the runs", file=sys.stderr)
        return 2
    if data.name in ("demo_wild",) and not data.exists():
        ensure_demo(data.parent)
    if not data.is_dir():
        print(f"error: cross-domain set {data} does not exist", file=sys.stderr)
        return 2
    done = 0
    for run in runs:
        try:
            if evaluate_crossdomain(run, data, force=args.force) is not None:
                done += 1
                print(f"evaluated {run.name} on {data.name}")
        except ValueError as err:
            print(f"error: {run.name}: {err}", file=sys.stderr)
    print(f"\n{done} run(s) newly evaluated on {data}\n")
    print(table(runs, data.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
