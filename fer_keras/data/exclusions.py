"""The exclusion list: ``<root>/exclude.txt``, one path per line relative to the dataset root.

Manual cleaning only appends to this file instead of deleting images, so a pass can be
undone and every later step (readers, dedupe, balance, anonymize) sees the same set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

EXCLUDE_FILE = "exclude.txt"


def _norm(line: str) -> Path:
    # Stored with forward slashes so lists written on Windows still match.
    return Path(PurePosixPath(line.strip().replace("\\", "/")))


def read_exclusions(root: str | os.PathLike) -> set[Path]:
    """Paths relative to ``root`` listed in ``root/exclude.txt``; empty if there is no list."""
    file = Path(root) / EXCLUDE_FILE
    if not file.is_file():
        return set()
    out: set[Path] = set()
    for line in file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.add(_norm(line))
    return out


def add_exclusions(root: str | os.PathLike, paths: Iterable[str | os.PathLike],
                   reason: str = "") -> list[Path]:
    """Append paths not yet listed; return those added. A comment line records when and why."""
    root = Path(root)
    known = read_exclusions(root)
    new: list[Path] = []
    for p in paths:
        p = Path(p)
        rel = p.relative_to(root) if p.is_absolute() else p
        rel = _norm(rel.as_posix())
        if rel not in known and rel not in new:
            new.append(rel)
    if new:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(root / EXCLUDE_FILE, "a", encoding="utf-8") as f:
            f.write(f"# {stamp} {reason}".rstrip() + "\n")
            f.writelines(f"{r.as_posix()}\n" for r in new)
    return new


def remove_exclusions(root: str | os.PathLike, paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Drop paths from the list (undo a review decision); comments are kept."""
    root = Path(root)
    file = root / EXCLUDE_FILE
    if not file.is_file():
        return []
    drop = {_norm(Path(p).as_posix()) for p in paths}
    kept, removed = [], []
    for line in file.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if s and not s.startswith("#") and _norm(s) in drop:
            removed.append(_norm(s))
        else:
            kept.append(line)
    tmp = file.with_suffix(".txt.tmp")
    tmp.write_text("\n".join(kept) + ("\n" if kept else ""), encoding="utf-8")
    os.replace(tmp, file)
    return removed
