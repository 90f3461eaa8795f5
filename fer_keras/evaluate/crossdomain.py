"""``make crossdomain``: evaluate finished runs on a balanced in-the-wild test set (BTFER).

Every finished run under ``--runs`` is evaluated on the set ITS config names
(``crossdomain:``, resolved against its ``data_root``), or on ``--data`` for every run
when that is given; never on another run's set. A run whose set does not exist is
skipped with a message naming the run and the path, not scored on some other set.
Each run is evaluated once (``--force`` again), on every image of the set, with the
class order its classes.json gives the model's outputs. A set holding only some of the
model's classes (CK+ has no neutral) is scored on those (``classes_evaluated``,
``fer_keras.evaluate.subset``); one with a class the model does not know is refused, naming
it. The set's images that duplicate a training image are counted (``dedup``,
``fer_keras.evaluate.dedup``), with the accuracy on the others. Results go to
``crossdomain_<set>.json`` in the run folder; a table of all runs, naming each run's
set, is printed.

Exit status: 0 when every run was handled (evaluated now or before, or configured with
no cross-domain set); 1 when any run was skipped for a missing set or failed, after
every other run was tried; 2 when ``--data`` does not exist.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from fer_keras.config import DEFAULT_RUNS
from fer_keras.console import CommandParser, quiet_tensorflow
from fer_keras.data.demo import ensure_demo
from fer_keras.data.readers import evaluation_set, skipped_lines
from fer_keras.evaluate import prior as prior_correction
from fer_keras.evaluate.dedup import crossdomain_dedup, dedup_line
from fer_keras.evaluate.subset import subset_line
from fer_keras.labels import check_known_classes
from fer_keras.runs import Run, crossdomain_tag, find_runs, read_json, write_json

#: Cross-domain sets generated on demand (the synthetic demo).
GENERATED_SETS = ("demo_wild",)
#: What can happen to a run, in the order the summary lists them; the last two make the exit status 1.
STATES = ("evaluated", "already evaluated", "without a set", "skipped (set missing)", "failed")


def evaluate_crossdomain(run_dir: Path, data: Path, *, force: bool = False) -> dict | None:
    """Evaluate one run on ``data``; None when a result already exists and not ``force``."""
    from fer_keras.evaluate.evaluator import evaluate_set

    run = Run(run_dir)
    out = run.crossdomain_file(data.name)
    if out.is_file() and not force:
        return None
    cfg = run.config()
    classes = run.classes()
    images = evaluation_set(data)
    check_known_classes(classes, images.class_names, test_name=str(data))  # before the model loads
    model = run.model()
    m = evaluate_set(model, images, cfg.res, model_classes=classes, pipeline=cfg.pipeline, out_dir=run_dir,
                     tag=crossdomain_tag(data.name), tta=cfg.tta(), prior=prior_correction.load(run_dir))
    m["skipped"] = images.summary()["skipped_files"]
    for line in skipped_lines(images.skipped, out, head=f"{run_dir.name} on {data.name}: skipped"):
        print(line)
    m["set"] = str(data)
    m["dedup"] = crossdomain_dedup(cfg, images, run.predictions_file(crossdomain_tag(data.name)),
                                   m.get("classes_evaluated"))
    write_json(out, m)
    return m


def result_notes(m: dict, classes: list[str]) -> list[str]:
    """What the console says beside 'evaluated': the classes scored when the set lacks some, its duplicates."""
    notes = [subset_line(m["classes_evaluated"], classes)] if m.get("classes_evaluated") else []
    dedup = m.get("dedup", {})
    notes.append(dedup_line(dedup, "duplicates") if "images" in dedup else f"duplicates: {dedup.get('error')}")
    return notes


def _generate(path: Path) -> None:
    if path.name in GENERATED_SETS and not path.exists():
        ensure_demo(path.parent)


def handle_run(run: Path, data: Path | None, *, force: bool = False) -> tuple[str, Path | None]:
    """One run's state (one of STATES) and the set it concerns: ``data`` if given, else its own."""
    try:
        target = data if data is not None else Run(run).config().crossdomain_dir()
    except ValueError as err:
        print(f"error: {run.name}: {err}", file=sys.stderr)
        return "failed", None
    if target is None:
        print(f"{run.name}: its config names no cross-domain set (crossdomain: null) and no --data was given")
        return "without a set", None
    _generate(target)
    if not target.is_dir():
        print(f"skipped {run.name}: its cross-domain set {target} (crossdomain in {Run(run).config_file}) "
              "does not exist; put the set there, or pass --data (TEST=) to evaluate every run on one set",
              file=sys.stderr)
        return "skipped (set missing)", target
    try:
        m = evaluate_crossdomain(run, target, force=force)
        if m is None:
            return "already evaluated", target
    except ValueError as err:
        print(f"error: {run.name} on {target}: {err}", file=sys.stderr)
        return "failed", target
    print(f"evaluated {run.name} on {target}")
    for note in result_notes(m, Run(run).classes()):
        print(f"  {note}")
    return "evaluated", target


def table(targets: dict[Path, Path | None]) -> str:
    """Each run's validation, test and cross-domain results, with the cross-domain set named."""
    head = (f"{'run':<58}{'val acc':>9}{'test acc':>10}  {'cross set':<14}{'cross acc':>10}{'cross F1m':>11}"
            f"{'prior acc':>11}{'prior tau':>11}")
    lines = [head, "-" * len(head)]
    for run, target in targets.items():
        m = Run(run).metrics()
        cross = Run(run).crossdomain_file(target.name) if target is not None else None
        c = read_json(cross) if cross is not None and cross.is_file() else {}
        f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"{run.name:<58}{f(m.get('val', {}).get('accuracy')):>9}"
                     f"{f(m.get('test', {}).get('accuracy')):>10}  {target.name if target else '-':<14}"
                     f"{f(c.get('accuracy')):>10}{f(c.get('f1_macro')):>11}"
                     f"{f(c.get('prior_corrected', {}).get('accuracy')):>11}"
                     f"{f(c.get('prior_corrected', {}).get('tau')):>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = CommandParser(prog="fer-crossdomain", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help=f"folder holding run folders ({DEFAULT_RUNS})")
    p.add_argument("--data", help="evaluate every run on this set (default: each run's configured crossdomain set)")
    p.add_argument("--force", action="store_true", help="re-evaluate runs that already have a result")
    args = p.parse_args(argv)
    runs = find_runs(args.runs)
    if not runs:
        print(f"no finished runs under {args.runs}")
        return 0
    quiet_tensorflow(args.verbose)
    data = Path(args.data) if args.data else None
    if data is not None:
        _generate(data)
        if not data.is_dir():
            print(f"error: cross-domain set {data} (--data) does not exist", file=sys.stderr)
            return 2
    targets: dict[Path, Path | None] = {}
    tally: Counter[str] = Counter()
    for run in runs:
        state, targets[run] = handle_run(run, data, force=args.force)
        tally[state] += 1
    print(f"\n{table(targets)}\n")
    print("crossdomain: " + ", ".join(f"{tally[s]} {s}" for s in STATES))
    unhandled = tally["skipped (set missing)"] + tally["failed"]
    if unhandled:
        print(f"error: {unhandled} of {len(runs)} run(s) have no cross-domain result (see above)", file=sys.stderr)
    return 1 if unhandled else 0


if __name__ == "__main__":
    sys.exit(main())
