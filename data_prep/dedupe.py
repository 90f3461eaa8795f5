"""Exact and near duplicates within and across classes and splits.

Exact duplicates share a SHA-256 of the file bytes; near duplicates (re-encodes, small
shifts, brightness changes, resizes) are perceptual hashes (``imagehash``) within a Hamming
distance. Clusters are stars around a keeper (every member within the threshold of it, so
chains of similar faces cannot merge), exact copies counted once. Reported: every cluster,
whether it crosses splits (a train/test leak) and whether its members carry different
labels (a label conflict).

Keeper rule, one image per cluster: the member in the most precious split (test, then val,
then train - evaluation sets stay intact, the leak is removed from training), then the
largest image (pixels, then bytes), then the first path in sort order. Clusters with
conflicting labels are only reported unless ``--conflicts`` says what to do with them.
Nothing is moved unless asked: ``--exclude`` lists the others in exclude.txt (reversible),
``--move-to DIR`` moves them out of the dataset.

Usage: python -m data_prep.dedupe --root DATA/fer2013 --out /tmp/dedupe [--threshold 6]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from tqdm import tqdm

from fer_keras.data.duplicates import near_pairs, pack_bits
from fer_keras.data.exclusions import add_exclusions
from fer_keras.data.readers import DatasetError

from .cli import run_step, step_parser
from .images import BadImageError, open_rgb, sha256_file
from .layout import scan
from .sheets import contact_sheet, save_sheet

HASHES = {"phash": imagehash.phash, "dhash": imagehash.dhash, "ahash": imagehash.average_hash,
          "whash": imagehash.whash}
SPLIT_RANK = {"test": 0, "val": 1, "train": 2, "": 3}


def hash_dataset(root: Path, *, method: str = "phash", hash_size: int = 8,
                 progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per image (path, split, label, sha256, hash, size) and the hash bits."""
    fn = HASHES[method]
    rows, bits, bad = [], [], []
    for it in tqdm(scan(root), desc="hash", unit="img", disable=not progress, file=sys.stderr):
        path = root / it.rel
        try:
            img = open_rgb(path)
        except BadImageError as e:
            print(f"skipped: {e}", file=sys.stderr)
            bad.append(it.rel.as_posix())
            continue
        h = fn(img, hash_size=hash_size)
        bits.append(np.asarray(h.hash, bool).ravel())
        rows.append({"path": it.rel.as_posix(), "split": it.split, "label": it.label,
                     "sha256": sha256_file(path), "hash": str(h),
                     "pixels": img.width * img.height, "bytes": path.stat().st_size})
    if not rows:
        raise DatasetError(f"{root}: none of its {len(bad)} images could be read (see the lines above)")
    df = pd.DataFrame(rows, columns=["path", "split", "label", "sha256", "hash", "pixels",
                                     "bytes"])
    df.attrs["unreadable"] = bad
    return df, np.array(bits, bool).reshape(len(rows), -1)


def _leader_clusters(order: np.ndarray, pairs: np.ndarray, n: int) -> np.ndarray:
    """Greedy star clustering: in keeper order, each unassigned node takes its free neighbours.

    Unlike connected components (single linkage), chains cannot grow: every member is within
    the threshold of its cluster's keeper, which is what "keep one, drop the rest" needs.
    """
    both = np.concatenate([pairs, pairs[:, ::-1]]) if len(pairs) else np.empty((0, 2), int)
    both = both[np.argsort(both[:, 0], kind="stable")]
    starts = np.searchsorted(both[:, 0], np.arange(n + 1))
    cluster = np.full(n, -1)
    for v in order:
        if cluster[v] >= 0:
            continue
        nb = both[starts[v]:starts[v + 1], 1]
        cluster[v] = v
        cluster[nb[cluster[nb] < 0]] = v
    return cluster


def find_duplicates(df: pd.DataFrame, bits: np.ndarray, threshold: int = 6) -> pd.DataFrame:
    """Rows of ``df`` that belong to a cluster of 2+ images, with cluster columns added."""
    out = df.copy()
    out["rank"] = out["split"].map(SPLIT_RANK)
    out = out.sort_values(["rank", "pixels", "bytes", "path"],
                          ascending=[True, False, False, True])
    # Exact copies collapse to one node, so a near search never has to find them twice.
    out["node"] = out.groupby("sha256", sort=False).ngroup()
    first = out.groupby("node", sort=True).head(1).sort_values("node")
    pairs = (near_pairs(pack_bits(bits[first.index.to_numpy()]), threshold) if threshold >= 0
             else np.empty((0, 2), np.int64))
    keeper_order = pd.unique(out["node"].to_numpy())  # nodes by their best member
    comp = _leader_clusters(keeper_order, pairs, len(first))
    out["component"] = comp[out["node"].to_numpy()]
    out = out[out.groupby("component")["path"].transform("size") > 1].copy()
    if out.empty:
        return out.assign(cluster=[], kind=[], keep=[], distance=[], cross_split=[],
                          train_test_leak=[], label_conflict=[])
    g = out.groupby("component", sort=False)
    out["keep"] = ~out["component"].duplicated()  # sorted by keeper rule above
    out["kind"] = np.where(g["sha256"].transform("nunique") == 1, "exact", "near")
    out["cross_split"] = g["split"].transform("nunique") > 1
    out["train_test_leak"] = g["split"].transform(lambda s: {"train", "test"} <= set(s))
    out["label_conflict"] = g["label"].transform("nunique") > 1
    keepers = out[out["keep"]]
    keeper_row = dict(zip(keepers["component"], keepers.index, strict=True))
    out["distance"] = [int((bits[i] != bits[keeper_row[c]]).sum())
                       for c, i in zip(out["component"], out.index, strict=True)]
    out["exact_copy_of_keeper"] = out["sha256"] == g["sha256"].transform("first")
    size = g["path"].transform("size")
    # Cluster ids: conflicts and leaks first (they matter most), then by size.
    order = (out.assign(size=size).groupby("component", sort=False)
             .agg(conf=("label_conflict", "first"), leak=("train_test_leak", "first"),
                  size=("size", "first"), first=("path", "first"))
             .sort_values(["conf", "leak", "size", "first"], ascending=[False, False, False, True]))
    out["cluster"] = out["component"].map({c: k + 1 for k, c in enumerate(order.index)})
    cols = ["cluster", "kind", "keep", "path", "split", "label", "distance",
            "exact_copy_of_keeper", "cross_split", "train_test_leak", "label_conflict",
            "sha256", "hash", "pixels", "bytes"]
    return out.sort_values(["cluster", "keep", "path"], ascending=[True, False, True])[cols]


def summarize(df: pd.DataFrame, dups: pd.DataFrame) -> dict:
    """Counts for humans: images that are redundant copies, and the clusters that matter."""
    exact = int((df.groupby("sha256").size() - 1).sum())
    redundant = int((~dups["keep"]).sum()) if len(dups) else 0
    by = dups.groupby("cluster") if len(dups) else None

    def clusters(col: str) -> int:
        return int(by[col].first().sum()) if by is not None else 0

    leak_test_images = 0
    if len(dups):
        leaks = dups[dups["train_test_leak"]]
        leak_test_images = int((leaks["split"] == "test").sum())
    return {
        "images": len(df),
        "clusters": int(dups["cluster"].nunique()) if len(dups) else 0,
        "exact_clusters": int((by["kind"].first() == "exact").sum()) if by is not None else 0,
        "near_clusters": int((by["kind"].first() == "near").sum()) if by is not None else 0,
        "images_in_clusters": len(dups),
        "redundant_images": redundant,
        "exact_duplicates": exact,
        "near_duplicates": redundant - exact,
        "cross_split_clusters": clusters("cross_split"),
        "train_test_leak_clusters": clusters("train_test_leak"),
        "test_images_with_train_duplicate": leak_test_images,
        "label_conflict_clusters": clusters("label_conflict"),
        "images_in_label_conflicts": int(dups["label_conflict"].sum()) if len(dups) else 0,
    }


def to_remove(dups: pd.DataFrame, conflicts: str = "report") -> list[str]:
    """Paths to move/exclude: non-keepers; conflicting clusters per ``conflicts``."""
    if dups.empty:
        return []
    plain = dups[~dups["label_conflict"] & ~dups["keep"]]["path"].tolist()
    conf = dups[dups["label_conflict"]]
    if conflicts == "drop":
        plain += conf["path"].tolist()
    elif conflicts == "keep-one":
        plain += conf[~conf["keep"]]["path"].tolist()
    return sorted(plain)


def write_sheets(root: Path, dups: pd.DataFrame, out: Path, max_sheets: int) -> int:
    n = 0
    for cluster, g in dups.groupby("cluster"):
        if n >= max_sheets:
            break
        caps = [f"{'KEEP ' if k else ''}{s}/{lab} d{d}\n{Path(p).name}"
                for k, s, lab, d, p in g[["keep", "split", "label", "distance", "path"]]
                .itertuples(index=False)]
        flags = [f for f, on in (("LABEL CONFLICT", g["label_conflict"].iloc[0]),
                                 ("TRAIN/TEST LEAK", g["train_test_leak"].iloc[0])) if on]
        title = f"cluster {cluster}: {g['kind'].iloc[0]}, {len(g)} images {' '.join(flags)}"
        frames = ["green" if k else None for k in g["keep"]]
        sheet = contact_sheet([root / p for p in g["path"]], caps, title=title, frames=frames,
                              thumb=96, cols=min(8, max(2, len(g))))
        save_sheet(sheet, out / "sheets" / f"cluster_{cluster:05d}.png")
        n += 1
    return n


def _check_move_to(root: Path, dest: Path) -> None:
    if dest.resolve() == root.resolve() or root.resolve() in dest.resolve().parents:
        raise ValueError(f"--move-to {dest} must be outside the dataset {root}")


def move_out(root: Path, paths: list[str], dest: Path) -> None:
    """Move files to ``dest`` under the same relative path (never overwriting)."""
    _check_move_to(root, dest)
    for p in paths:
        target = dest / p
        if target.exists():
            raise FileExistsError(f"{target} exists; refusing to overwrite it")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(root / p, target)


def run(root: str | os.PathLike, out: str | os.PathLike, *, threshold: int = 6,
        method: str = "phash", hash_size: int = 8, max_sheets: int = 1000,
        move_to: str | os.PathLike | None = None, exclude: bool = False,
        conflicts: str = "report", progress: bool = True) -> dict:
    """Hash, cluster, report (CSV, JSON summary, sheets) and optionally act on duplicates."""
    root, out = Path(root), Path(out)
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise ValueError(f"report folder {out} must be outside the dataset {root}")
    if move_to:
        _check_move_to(root, Path(move_to))  # before the work, not after it
    out.mkdir(parents=True, exist_ok=True)
    df, bits = hash_dataset(root, method=method, hash_size=hash_size, progress=progress)
    dups = find_duplicates(df, bits, threshold)
    dups.to_csv(out / "duplicates.csv", index=False)
    summary = summarize(df, dups)
    summary.update(threshold=threshold, method=method, hash_size=hash_size, root=str(root),
                   unreadable=df.attrs.get("unreadable", []))
    summary["sheets"] = write_sheets(root, dups, out, max_sheets)
    removed = to_remove(dups, conflicts)
    if exclude:
        add_exclusions(root, removed, f"dedupe: {method} threshold {threshold}")
    if move_to:
        move_out(root, removed, Path(move_to))
    summary["removed" if (exclude or move_to) else "would_remove"] = len(removed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = step_parser("data_prep.dedupe", __doc__)
    p.add_argument("--root", required=True, type=Path, help="dataset root (split/class folders)")
    p.add_argument("--out", required=True, type=Path, help="report folder (outside the dataset)")
    p.add_argument("--threshold", type=int, default=6,
                   help="max Hamming distance of a near duplicate (0: identical hash only, "
                        "-1: exact byte copies only)")
    p.add_argument("--hash", choices=sorted(HASHES), default="phash")
    p.add_argument("--hash-size", type=int, default=8, help="hash side (8 -> 64 bits)")
    p.add_argument("--max-sheets", type=int, default=1000, help="contact sheets to draw")
    p.add_argument("--exclude", action="store_true", help="add duplicates to exclude.txt")
    p.add_argument("--move-to", type=Path, help="move duplicates into this folder")
    p.add_argument("--conflicts", choices=("report", "keep-one", "drop"), default="report",
                   help="clusters with different labels: leave them (report), keep one, "
                        "or remove every member (drop)")
    a = p.parse_args(argv)
    return run_step(lambda: print(json.dumps(
        run(a.root, a.out, threshold=a.threshold, method=a.hash, hash_size=a.hash_size,
            max_sheets=a.max_sheets, move_to=a.move_to, exclude=a.exclude, conflicts=a.conflicts),
        indent=1)))


if __name__ == "__main__":
    raise SystemExit(main())
