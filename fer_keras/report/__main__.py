"""``python -m fer_keras.report`` / ``fer-report``: tables, figures and report.html from finished runs."""

from __future__ import annotations

import sys
from pathlib import Path

from fer_keras.config import DEFAULT_RUNS
from fer_keras.console import CommandParser, quiet_tensorflow
from fer_keras.report.build import build_report


def main(argv: list[str] | None = None) -> int:
    p = CommandParser(prog="fer-report", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--runs", default=str(DEFAULT_RUNS),
                   help=f"folder holding run folders, searched at any depth ({DEFAULT_RUNS})")
    p.add_argument("--out", default="report", help="where to write the report (report)")
    p.add_argument("--gradcam", nargs="*", metavar="RUN_ID", default=None,
                   help="Grad-CAM heatmaps for these runs (loads TensorFlow)")
    p.add_argument("--gradcam-images", type=int, default=4, help="images per Grad-CAM run (4)")
    p.add_argument("--paper-csv", default=None, metavar="CSV",
                   help="published numbers to show beside ours (config,dataset,model,best_val_acc,btfer_acc_pct)")
    args = p.parse_args(argv)
    for flag, path, is_there in (("runs folder", args.runs, Path.is_dir), ("paper CSV", args.paper_csv, Path.is_file)):
        if path is not None and not is_there(Path(path)):
            print(f"error: {flag} {path} does not exist", file=sys.stderr)
            return 2
    if args.gradcam is not None:  # the only part that needs TensorFlow
        quiet_tensorflow(args.verbose)
    written = build_report(Path(args.runs), Path(args.out), gradcam=args.gradcam, gradcam_images=args.gradcam_images,
                           paper_csv=Path(args.paper_csv) if args.paper_csv else None)
    print(f"report: {len(written)} file(s) in {args.out}")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
