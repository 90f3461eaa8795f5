"""``python -m fer_keras.export``: export a run to TFLite, or check which zoo models convert.

    python -m fer_keras.export RUN --quant int8          # RUN: a run folder or a run id under --runs
    python -m fer_keras.export --all-models --res 48     # every registered model, random weights
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fer_keras.config import DEFAULT_RUNS
from fer_keras.console import CommandParser, quiet_tensorflow
from fer_keras.export.check import check_all, markdown
from fer_keras.export.tflite import QUANTS
from fer_keras.runs import write_json


def _parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="python -m fer_keras.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="run folder, or run id under --runs")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                   help=f"runs folder to look run ids up in ({DEFAULT_RUNS})")
    p.add_argument("--format", default="tflite", choices=("tflite",), help="export format (tflite)")
    p.add_argument("--quant", default="none", choices=(*QUANTS, "float32"),
                   help="none/float32, float16, int8 (full-integer, float input/output; a model that equalises "
                   "its input keeps the equalisation in float) or int8_float_softmax (int8 but a float final "
                   "softmax: no ties between unsure classes)")
    p.add_argument("--data-root", type=Path, help="where the run's dataset lives now, if it moved")
    p.add_argument("--representative", type=int, default=200, help="int8 calibration images (200)")
    p.add_argument("--threads", type=int, help="interpreter threads (default: all cores)")
    p.add_argument("--all-models", action="store_true", help="check every registered model converts")
    p.add_argument("--models", nargs="+", help="with --all-models: only these models")
    p.add_argument("--res", type=int, default=48, help="with --all-models: resolution (48)")
    p.add_argument("--out", type=Path, default=Path("bench"), help="with --all-models: output folder (bench)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_tensorflow(args.verbose)
    if args.all_models:
        rows = check_all(args.models, args.res)
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / "convertible.json", rows)
        (args.out / "convertible.md").write_text(markdown(rows))
        print(f"wrote {args.out / 'convertible.json'} and {args.out / 'convertible.md'}")
        return 0
    if not args.run:
        print("error: give a RUN (folder or id) or --all-models", file=sys.stderr)
        return 2
    from fer_keras.export.run_export import export_run, resolve_run  # imports TensorFlow: after quiet_tensorflow

    quant = "none" if args.quant == "float32" else args.quant
    try:
        run_dir = resolve_run(args.run, args.runs)
        result = export_run(run_dir, quant, data_root=args.data_root, representative=args.representative,
                            threads=args.threads)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    keys = ("file", "size_bytes", "keras_size_bytes", "n_test", "keras_accuracy", "tflite_accuracy",
            "accuracy_change", "argmax_agreement", "latency_single_image")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
