"""The protocol's class-balancing weights, computed on the training split only.

simple: weight(c) = count(most common class) / count(c); conservative: the same capped
(3.0 by default). PROTOCOL.md gives RAF-DB examples that the tests check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

BALANCES = ("none", "simple", "conservative")


def class_weights(counts: Mapping[str, int] | Sequence[int], balance: str, cap: float = 3.0) -> dict[int, float] | None:
    """Per-class-index weights for ``model.fit(class_weight=...)``; None for 'none'."""
    values = list(counts.values()) if isinstance(counts, Mapping) else list(counts)
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    if balance == "none":
        return None
    if any(v <= 0 for v in values):
        raise ValueError(f"every class needs at least one training image to weight it, got counts {values}")
    top = max(values)
    weights = {i: top / v for i, v in enumerate(values)}
    if balance == "conservative":
        weights = {i: min(w, cap) for i, w in weights.items()}
    return weights
