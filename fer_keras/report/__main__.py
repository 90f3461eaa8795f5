"""``python -m fer_keras.report`` / ``fer-report``: tables, figures and report.html from finished runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_keras.report.build import build_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fer-report", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--runs", default="runs", help="folder holding run folders, searched at any depth (runs)")
    p.add_argument("--out", default="report", help="where to write the report (report)")
    p.add_argument("--gradcam", nargs="*", metavar="RUN_ID", default=None,
                   help="Grad-CAM heatmaps for these runs (loads TensorFlow)")
    p.add_argument("--gradcam-images", type=int, default=4, help="images per Grad-CAM run (4)")
    args = p.parse_args(argv)
    if not Path(args.runs).is_dir():
        print(f"error: runs folder {args.runs} does not exist", file=sys.stderr)
        return 2
    written = build_report(Path(args.runs), Path(args.out), gradcam=args.gradcam, gradcam_images=args.gradcam_images)
    print(f"report: {len(written)} file(s) in {args.out}")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
