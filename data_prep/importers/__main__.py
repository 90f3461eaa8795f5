"""python -m data_prep.importers <dataset> --src ... --dst ...: import, then print the counts."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import run_step
from . import IMPORTERS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.importers", description=__doc__)
    sub = p.add_subparsers(dest="dataset", required=True)
    for name, mod in IMPORTERS.items():
        s = sub.add_parser(name, help=(mod.__doc__ or "").splitlines()[0],
                           description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(s)
        s.add_argument("--dst", required=True, type=Path, help="output dataset root")
        s.add_argument("--force", action="store_true",
                       help="re-import into a folder that holds this same dataset")
        s.add_argument("--skip-bad", action="store_true",
                       help="count and skip unreadable/missing images instead of stopping")
    a = p.parse_args(argv)
    return run_step(lambda: print(IMPORTERS[a.dataset].from_args(a).report()))


if __name__ == "__main__":
    raise SystemExit(main())
