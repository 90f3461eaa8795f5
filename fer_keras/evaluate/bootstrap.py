"""Uncertainty of accuracies: percentile bootstrap intervals and a paired test between two models.

Test sets of a few thousand images leave accuracies uncertain by a point or two, so
the report gives every accuracy a 95% bootstrap interval and marks differences that a
paired test on the same images cannot tell from chance. McNemar's exact test looks
only at the images the two models disagree on, which is what pairing buys. A table
compares its best model with every other one, so those p-values are Holm-adjusted as one
family: a table of twenty models would otherwise show a chance "significant" difference
almost every time. NumPy and SciPy only: the report must run without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def correct_from_confusion(cm: Sequence[Sequence[int]]) -> np.ndarray:
    """A 0/1 vector with one entry per image (right or wrong), from a confusion matrix."""
    cm = np.asarray(cm, dtype=int)
    right = int(np.trace(cm))
    return np.concatenate([np.ones(right, dtype=np.int8), np.zeros(int(cm.sum()) - right, dtype=np.int8)])


def bootstrap_ci(correct: Sequence[int] | np.ndarray, *, level: float = 0.95, n_boot: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``correct`` (accuracy for 0/1 values)."""
    x = np.asarray(correct, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    if np.isin(x, (0, 1)).all():
        # Resampling n right/wrong results with replacement counts the right ones binomially.
        means = rng.binomial(x.size, x.mean(), size=n_boot) / x.size
    else:
        means = np.array([x[rng.integers(0, x.size, x.size)].mean() for _ in range(n_boot)])
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def mcnemar_p(correct_a: Sequence[int] | np.ndarray, correct_b: Sequence[int] | np.ndarray) -> float:
    """Exact McNemar p-value: do models a and b err on the same images equally often?"""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same images: got {a.size} and {b.size} results")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error); NaNs stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def fold_interval(values: Sequence[float] | np.ndarray, *, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of per-fold values: the spread over folds, for when images
    cannot be matched across folds (no per-image predictions)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return (float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)
