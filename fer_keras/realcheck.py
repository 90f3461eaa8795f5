"""``python -m fer_keras.realcheck`` / ``make realcheck``: does a protocol run learn on real faces?

Tiny synthetic tests cannot catch what breaks at full dataset size (a shuffle buffer
smaller than a class-sorted split once made every FER2013 run collapse while every test
passed). This check trains a small model for a few epochs on a full real dataset with
the protocol's settings and prints, after every epoch, validation and test accuracy and
the predicted class shares on the test split. It exits non-zero when the run collapses
or does not beat chance, so a developer runs it before resolving data, pipeline,
training or evaluation work. The test split is only looked at, never used for decisions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_keras.config import CONFIG_DIR, DEFAULT_RUNS, DEFAULT_SEED, RunConfig, load_config
from fer_keras.console import CommandParser, progress_verbosity, quiet_tensorflow
from fer_keras.data.readers import read_class_folders
from fer_keras.timing import Stopwatch

DEFAULT_DATA = Path("../shared/data/fer2013")
#: Final test accuracy must beat chance (1 / classes) by this much.
MIN_GAIN_OVER_CHANCE = 0.05


def verdict(rows: list[dict], num_classes: int) -> list[str]:
    """Why the check fails (empty when the run learned)."""
    if not rows:
        return ["no epoch finished"]
    last, chance = rows[-1], 1 / num_classes
    problems = []
    if last["collapsed"]:
        top = max(last["shares"], key=last["shares"].get)
        problems.append(f"collapsed: {last['shares'][top]:.0%} of test predictions are {top!r}")
    never = [c for c, s in last["shares"].items() if s == 0]
    if len(never) >= 2:
        problems.append(f"classes never predicted on test: {', '.join(never)}")
    if last["test_acc"] < chance + MIN_GAIN_OVER_CHANCE:
        problems.append(f"test accuracy {last['test_acc']:.3f} is not above chance ({chance:.3f}) "
                        f"by {MIN_GAIN_OVER_CHANCE}")
    return problems


def realcheck_config(data: Path, *, model: str, epochs: int, out: Path, seed: int) -> RunConfig:
    """The protocol config (configs/protocol.yaml) on ``data``, capped at ``epochs``, no cross-domain set."""
    return load_config(CONFIG_DIR / "protocol.yaml",
                       {"model": model, "dataset": data.name, "data_root": data.parent, "epochs": epochs,
                        "crossdomain": "none", "out": out, "seed": seed, "tensorboard": False,
                        "run_id": f"realcheck_{model}_{data.name}_s{seed}"})


def main(argv: list[str] | None = None) -> int:
    p = CommandParser(prog="fer-realcheck", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"a real dataset with train/ and test/ class folders (default {DEFAULT_DATA})")
    p.add_argument("--model", default="sequential_simple")
    p.add_argument("--epochs", type=int, default=5,
                   help="5: the protocol (lr 1e-4, class weights) leans on one class for its first 2-4 epochs")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--out", type=Path, default=DEFAULT_RUNS)
    args = p.parse_args(argv)
    if not (args.data / "train").is_dir() or not (args.data / "test").is_dir():
        print(f"error: {args.data} needs train/ and test/ class folders (FER2013's Kaggle layout)", file=sys.stderr)
        return 2
    quiet_tensorflow(args.verbose)
    from fer_keras.evaluate.probe import EpochTestProbe
    from fer_keras.train.loop import train_run

    cfg = realcheck_config(args.data, model=args.model, epochs=args.epochs, out=args.out, seed=args.seed)
    test = read_class_folders(args.data / "test", name=f"{args.data.name}[test]")
    print(f"realcheck: {cfg.model} at {cfg.res} px on {args.data}, {args.epochs} epochs; "
          f"test counts {test.counts()}", flush=True)
    probe = EpochTestProbe(test, cfg)
    clock = Stopwatch()
    train_run(cfg, force=True, verbose=progress_verbosity(), extra_callbacks=[probe])
    problems = verdict(probe.rows, len(test.class_names))
    print(f"realcheck: {len(probe.rows)} epochs in {clock.minutes:.1f} min; run folder {cfg.run_dir()}")
    if problems:
        print("REALCHECK FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"realcheck passed: final test accuracy {probe.rows[-1]['test_acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
