"""Split a grid between workers: each gets a disjoint, stable slice of the sorted run ids.

Shards are numbered from 0: ``i/n`` with ``0 <= i < n``, so 4 workers are ``0/4`` .. ``3/4``
(``4/4`` is refused with a hint: it is the 1-based spelling of the last one). Worker ``i``
of ``n`` takes every n-th run id (in sorted order) starting at ``i``, so the slices are
balanced, never overlap and do not depend on the order of the grid file. Under a SLURM job
array without ``--shard`` the shard is the task's position in the array,
``(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`` of
``SLURM_ARRAY_TASK_COUNT``, so ``--array=0-7``, ``--array=1-8`` and ``--array=0-14:2`` all
give shards 0/8 .. 7/8. Per-run locks (``lock.py``) keep workers safe even without shards.
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
        raise ValueError(f"shard must look like i/n, numbered from 0 (e.g. 0/4 .. 3/4), got {text!r}") from None
    if n < 1:
        raise ValueError(f"shard {text!r}: the number of shards n must be at least 1")
    if i == n:
        raise ValueError(f"shard {text!r}: shards are numbered from 0, so the {n} shards are 0/{n} .. {n - 1}/{n}; "
                         f"from a 1-based index (such as SLURM_ARRAY_TASK_ID of --array=1-{n}) pass i-1, or leave "
                         "out --shard in a job array")
    if not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= i < n (shards are numbered from 0: 0/{n} .. {n - 1}/{n})")
    return i, n


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The SLURM job-array shard (the task's 0-based position in the array), or None outside a job array."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    offset = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    step = int(env.get("SLURM_ARRAY_TASK_STEP", 1))
    i, n = offset // step, int(env["SLURM_ARRAY_TASK_COUNT"])
    if offset % step or not 0 <= i < n:
        raise ValueError(f"SLURM array task {env['SLURM_ARRAY_TASK_ID']} is not one of {n} evenly spaced tasks "
                         "(--array=0-7, 1-8 or 0-14:2); with an array of another shape pass --shard i/n")
    return i, n


def select(items: Sequence[T], shard: tuple[int, int] | None, key: Callable[[T], str] = str) -> list[T]:
    """The items of ``shard`` (all of them when None), in sorted ``key`` order."""
    ordered = sorted(items, key=key)
    if shard is None:
        return ordered
    i, n = shard
    return ordered[i::n]
