"""Test-time augmentation: the one definition that evaluation and prediction share.

A run's metrics are measured with its ``tta_flip`` setting (the fast recipe's horizontal-flip
averaging); ``fer_keras.load_run(...).predict`` applies the same function, so what a user gets is
what ``metrics.json`` (and the built-in model's card) reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf


def mirror(images: Any) -> tf.Tensor:
    """The left-right mirror images of an N x H x W x C batch."""
    return tf.reverse(images, axis=[2])


def tta_probs(predict: Callable[[Any], np.ndarray], images: Any, *, flip: bool) -> np.ndarray:
    """``predict(images)``; with ``flip``, the mean of the probabilities of ``images`` and of their mirror images.

    ``images``: an N x H x W x C batch (array or tensor) or a ``tf.data.Dataset`` of such batches;
    ``predict`` maps it to (N, classes) probabilities.
    """
    probs = predict(images)
    if not flip:
        return probs
    mirrored = images.map(mirror) if isinstance(images, tf.data.Dataset) else mirror(images)
    return (probs + predict(mirrored)) / 2
