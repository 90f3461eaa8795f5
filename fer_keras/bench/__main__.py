"""``python -m fer_keras.bench``: measure, then write bench/results.json and bench/results.md.

    python -m fer_keras.bench                                   # demo data, default models, 48 px
    python -m fer_keras.bench --res 48 224 --models resnet18    # 224 px is slow on a CPU
    python -m fer_keras.bench --data ../shared/data/fer2013/train --only pipeline
    python -m fer_keras.bench --only train-speed --speed-batches 64 128   # fp32 vs bf16 vs XLA, fit()
    python -m fer_keras.bench --only learning-curve --learning-curves runs/fast16/RUN runs/fast36/RUN
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_keras.bench.learning_curve import curve_problem
from fer_keras.bench.report import write_results
from fer_keras.bench.runner import DEFAULT_SECTIONS, SECTIONS, BenchOptions, measures, run_benchmark
from fer_keras.bench.train_speed import VARIANTS
from fer_keras.console import CommandParser, quiet_tensorflow
from fer_keras.export.tflite import QUANTS
from fer_keras.timing import Stopwatch


def _parser() -> argparse.ArgumentParser:
    d = BenchOptions()
    p = CommandParser(prog="python -m fer_keras.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", help="registered models, or 'all' (sequential_simple resnet18 mobilenet_v2)")
    p.add_argument("--res", nargs="+", type=int, default=d.res, help="resolutions (48)")
    p.add_argument("--batch", type=int, default=d.batch, help="batch size everywhere (32)")
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed repeats per measurement (5)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps per timed repeat (5)")
    p.add_argument("--latency-repeats", type=int, default=d.latency_repeats, help="single-image calls (50)")
    p.add_argument("--data", type=Path, help="image folder (class folders, or a dataset with train/); "
                   "default: the built-in demo data")
    p.add_argument("--max-images", type=int, default=d.max_images, help="pipeline: random subset size (2000)")
    p.add_argument("--pipeline-res", type=int, default=d.pipeline_res, help="pipeline resolution (48)")
    p.add_argument("--pipeline-epochs", type=int, default=d.pipeline_epochs, help="epochs, first one apart (6)")
    p.add_argument("--matmul-size", type=int, default=d.matmul_size, help="matmul side for the peak (2048)")
    p.add_argument("--threads", type=int, help="TFLite interpreter threads (default: all cores)")
    p.add_argument("--crop-images", type=int, default=d.crop_images, help="images for the crop benchmark (160)")
    p.add_argument("--quants", nargs="*", choices=QUANTS, default=d.quants,
                   help="TFLite formats timed against Keras (all); none given: Keras only")
    p.add_argument("--speed-variants", nargs="+", choices=VARIANTS, default=d.speed_variants,
                   help="train-speed: precision/XLA variants (fp32 bf16 fp32+xla)")
    p.add_argument("--speed-batches", nargs="+", type=int, default=d.speed_batches, help="train-speed: (64 128)")
    p.add_argument("--steps-per-execution", nargs="+", type=int, default=d.steps_per_execution,
                   help="train-speed: steps_per_execution values (1)")
    p.add_argument("--only", nargs="+", choices=SECTIONS,
                   help=f"run only these sections (default: {' '.join(DEFAULT_SECTIONS)}; train-speed and "
                        "learning-curve on request)")
    p.add_argument("--skip", nargs="+", choices=SECTIONS, default=(), help="leave these sections out")
    p.add_argument("--learning-curves", nargs="+", type=Path, default=(), metavar="RUN_DIR",
                   help="learning-curve: run folders with a learning_curve.csv (validation accuracy vs minutes)")
    p.add_argument("--out", type=Path, default=d.out, help="output folder (bench)")
    return p


def _check_learning_curves(p: argparse.ArgumentParser, sections: tuple[str, ...], runs: list[Path]) -> None:
    """The section and its run folders go together, and every folder has a curve (before any timing)."""
    if runs and "learning-curve" not in sections:
        p.error("--learning-curves needs the learning-curve section: add --only learning-curve "
                "(with any other sections to run)")
    if "learning-curve" in sections and not runs:
        p.error("the learning-curve section needs run folders: add --learning-curves RUN_DIR [RUN_DIR ...]")
    problems = [msg for run in runs if (msg := curve_problem(run))]
    if problems:
        p.error("\n  ".join(["no learning curve to show:", *problems]))


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    sections = tuple(s for s in (a.only or DEFAULT_SECTIONS) if s not in a.skip)
    _check_learning_curves(p, sections, list(a.learning_curves))
    if measures(sections):  # reading run folders alone needs no TensorFlow
        quiet_tensorflow(a.verbose)
    opts = BenchOptions(models=a.models, res=a.res, batch=a.batch, repeats=a.repeats, steps=a.steps,
                        latency_repeats=a.latency_repeats, data=a.data, max_images=a.max_images,
                        pipeline_res=a.pipeline_res, pipeline_epochs=a.pipeline_epochs,
                        matmul_size=a.matmul_size, threads=a.threads, crop_images=a.crop_images,
                        sections=sections, out=a.out, quants=tuple(a.quants),
                        speed_variants=tuple(a.speed_variants), speed_batches=tuple(a.speed_batches),
                        steps_per_execution=tuple(a.steps_per_execution),
                        learning_curves=tuple(a.learning_curves))
    clock = Stopwatch()
    results = run_benchmark(opts)
    results["seconds"] = round(clock.seconds, 1)
    js, md = write_results(results, a.out)
    print(md.read_text())
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
