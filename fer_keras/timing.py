"""Wall-clock timing: one clock for every duration the suite reports, and repeated calls with warm-up
excluded, summarised by robust statistics.

Medians, not means: the benchmark machine may be shared, and a median is less moved
by another process stealing a core for a moment than a mean is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class Stopwatch:
    """Seconds since it was started, on ``perf_counter``: monotonic, so a clock step mid-run (NTP, a
    suspended laptop) cannot make a duration negative or jump, as ``time.time()`` differences can."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    @property
    def minutes(self) -> float:
        return self.seconds / 60


def time_calls(fn: Callable[[], object], *, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        watch = Stopwatch()
        fn()
        out.append(watch.seconds)
    return out


def summarise(seconds: list[float]) -> dict[str, float]:
    """Median, 95th percentile, minimum (ms) and the number of timed calls."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {"median_ms": round(float(np.median(ms)), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
            "min_ms": round(float(ms.min()), 4), "n": int(ms.size)}
