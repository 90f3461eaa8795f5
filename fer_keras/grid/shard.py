"""Split a grid between workers: each gets a disjoint, stable slice of the sorted run ids.

Worker ``i`` of ``n`` takes every n-th run id (in sorted order) starting at ``i``, so
the slices are balanced, never overlap and do not depend on the order of the grid
file. Under a SLURM job array the shard comes from ``SLURM_ARRAY_TASK_ID`` /
``SLURM_ARRAY_TASK_COUNT`` (offset by ``SLURM_ARRAY_TASK_MIN``, so ``--array=1-8`` works).
Per-run locks (``lock.py``) keep workers safe even without shards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The SLURM job-array shard, or None outside a job array."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    i = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    return parse_shard(f"{i}/{int(env['SLURM_ARRAY_TASK_COUNT'])}")


def select(items: Sequence[T], shard: tuple[int, int] | None, key: Callable[[T], str] = str) -> list[T]:
    """The items of ``shard`` (all of them when None), in sorted ``key`` order."""
    ordered = sorted(items, key=key)
    if shard is None:
        return ordered
    i, n = shard
    return ordered[i::n]
