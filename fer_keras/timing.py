"""Wall-clock timing with warm-up excluded, summarised by robust statistics.

Medians, not means: the benchmark machine may be shared, and a median is less moved
by another process stealing a core for a moment than a mean is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_calls(fn: Callable[[], object], *, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summarise(seconds: list[float]) -> dict[str, float]:
    """Median, 95th percentile, minimum (ms) and the number of timed calls."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {"median_ms": round(float(np.median(ms)), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
            "min_ms": round(float(ms.min()), 4), "n": int(ms.size)}
