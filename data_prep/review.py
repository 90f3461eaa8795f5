"""Manual clean pass: numbered contact sheets per class, and the exclude.txt list they feed.

1. ``sheets`` draws pages of numbered thumbnails per split/class (images already excluded
   are left out, so each pass only shows what is still in) and an ``index.csv`` that maps
   every (sheet, number) to its file.
2. Look at the sheets; note the numbers of non-faces, drawings, text, wrong labels.
3. ``exclude`` appends those files to ``<root>/exclude.txt`` with a reason; ``include``
   takes a file back. Images are never deleted.

Usage:
  python -m data_prep.review sheets  --root DATA/btfer --out /tmp/review
  python -m data_prep.review exclude --root DATA/btfer --index /tmp/review/index.csv \
         --cells train_happy_p001:3,17,40-42 --reason "drawings"
  python -m data_prep.review include --root DATA/btfer --paths train/happy/x.jpg
"""

from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path

import pandas as pd

from fer_keras.data.exclusions import add_exclusions, remove_exclusions

from .cli import run_step, step_parser
from .layout import scan
from .sheets import contact_sheet, save_sheet

INDEX = "index.csv"


def make_sheets(root: str | os.PathLike, out: str | os.PathLike, *, per_sheet: int = 100,
                cols: int = 10, thumb: int = 96, split: str | None = None) -> pd.DataFrame:
    """Write numbered sheets per split/class and ``index.csv``; return the index."""
    root, out = Path(root), Path(out)
    items = [it for it in scan(root) if split is None or it.split == split]
    df = pd.DataFrame({"path": [it.rel.as_posix() for it in items],
                       "split": [it.split for it in items],
                       "label": [it.label for it in items]})
    rows = []
    for (sp, label), g in df.groupby(["split", "label"], sort=True):
        paths = g["path"].tolist()
        for page, start in enumerate(range(0, len(paths), per_sheet), 1):
            chunk = paths[start:start + per_sheet]
            name = f"{sp + '_' if sp else ''}{label}_p{page:03d}"
            caps = [f"{i} {Path(p).name}" for i, p in enumerate(chunk, 1)]
            title = f"{name}: {label} ({sp or 'no split'}) images {start + 1}-{start + len(chunk)}"
            save_sheet(contact_sheet([root / p for p in chunk], caps, thumb=thumb, cols=cols,
                                     title=title), out / f"{name}.png")
            rows += [{"sheet": name, "cell": i, "path": p} for i, p in enumerate(chunk, 1)]
    index = pd.DataFrame(rows, columns=["sheet", "cell", "path"])
    out.mkdir(parents=True, exist_ok=True)
    index.to_csv(out / INDEX, index=False)
    return index


def parse_cells(spec: str) -> tuple[str, list[int]]:
    """'train_happy_p001:3,17,40-42' -> ('train_happy_p001', [3, 17, 40, 41, 42])."""
    sheet, sep, cells = spec.rpartition(":")
    if not sep or not sheet:
        raise ValueError(f"cell spec {spec!r} must look like SHEET:1,5,7-9")
    nums: list[int] = []
    try:
        for part in cells.split(","):
            lo, _, hi = part.strip().partition("-")
            nums += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"bad cell numbers in {spec!r}; expected e.g. 1,5,7-9") from None
    return sheet, nums


def cells_to_paths(index: pd.DataFrame, specs: list[str], *, source: str = "the index") -> list[str]:
    """Resolve cell specs through the index; an unknown sheet or number is a ``ValueError`` naming what exists."""
    missing_columns = {"sheet", "cell", "path"} - set(index.columns)
    if missing_columns:
        raise ValueError(f"{source} has no column(s) {sorted(missing_columns)}: not an index.csv written by "
                         "'review sheets'")
    sheets = sorted(index["sheet"].astype(str).unique())
    paths = []
    for spec in specs:
        sheet, nums = parse_cells(spec)
        sub = index[index["sheet"].astype(str) == sheet].set_index("cell")["path"]
        if sub.empty:
            close = difflib.get_close_matches(sheet, sheets, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (it has {_listing(sheets)})"
            raise ValueError(f"sheet {sheet!r} is not in {source}{hint}")
        missing = [n for n in nums if n not in sub.index]
        if missing:
            raise ValueError(f"sheet {sheet!r} has no cell(s) {', '.join(map(str, missing))}: "
                             f"its cells are {sub.index.min()}-{sub.index.max()}")
        paths += [sub[n] for n in nums]
    return paths


def _listing(names: list[str], most: int = 5) -> str:
    if not names:
        return "no sheets"
    more = f", ... ({len(names)} sheets)" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def main(argv: list[str] | None = None) -> int:
    p = step_parser("data_prep.review", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheets", help="draw numbered contact sheets per class")
    s.add_argument("--root", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--split")
    s.add_argument("--per-sheet", type=int, default=100)
    s.add_argument("--cols", type=int, default=10)
    s.add_argument("--thumb", type=int, default=96)
    e = sub.add_parser("exclude", help="add images to exclude.txt by sheet cell or path")
    e.add_argument("--root", required=True, type=Path)
    e.add_argument("--index", type=Path, help="index.csv written by 'sheets'")
    e.add_argument("--cells", nargs="*", default=[], help="SHEET:1,5,7-9 ...")
    e.add_argument("--paths", nargs="*", default=[], help="paths relative to --root")
    e.add_argument("--reason", default="review")
    i = sub.add_parser("include", help="take images back out of exclude.txt")
    i.add_argument("--root", required=True, type=Path)
    i.add_argument("--paths", nargs="+", required=True)
    a = p.parse_args(argv)
    if a.cmd == "exclude" and a.cells and not a.index:
        p.error("--cells needs --index")
    return run_step(lambda: _command(a))


def _command(a: argparse.Namespace) -> None:
    """Run one review subcommand (its errors end in one line through ``run_step``)."""
    if a.cmd == "sheets":
        idx = make_sheets(a.root, a.out, per_sheet=a.per_sheet, cols=a.cols, thumb=a.thumb,
                          split=a.split)
        print(f"{idx['sheet'].nunique()} sheets, {len(idx)} images -> {a.out}")
    elif a.cmd == "exclude":
        paths = list(a.paths)
        if a.cells:
            paths += cells_to_paths(pd.read_csv(a.index), a.cells, source=str(a.index))
        for rel in paths:
            if not (a.root / rel).is_file():
                raise FileNotFoundError(f"{a.root / rel} does not exist")
        added = add_exclusions(a.root, paths, a.reason)
        print(f"excluded {len(added)} new image(s) ({len(paths) - len(added)} already listed)")
    else:
        removed = remove_exclusions(a.root, a.paths)
        print(f"took back {len(removed)} image(s)")


if __name__ == "__main__":
    raise SystemExit(main())
