"""BatchNorm statistics that match the weights they are used with (issue 24, 'EMA and BatchNorm').

Keras' EMA (``use_ema``) averages the trainable variables only, so an EMA model would pair averaged
weights with moving statistics gathered under the raw weights. As for SWA (Izmailov et al. 2018,
``bn_update``), the statistics are recomputed under the averaged weights: a forward pass in training
mode over un-augmented training batches, each BatchNorm layer keeping the cumulative mean of the batch
statistics (momentum (k-1)/k at the k-th batch) instead of its usual exponential average.

:class:`RecomputeBatchNorm` does the same for the raw weights before every validation (``batchnorm_recompute``,
and the TLF embedding): the moving averages lag the weights and are gathered on augmented batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import keras
import numpy as np

#: Un-augmented training images used for the recomputation: enough for stable statistics at a few % of an
#: epoch's cost on FER2013 (32 batches of 128).
RECOMPUTE_IMAGES = 4096


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def read_statistics(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for bn in batchnorm_layers(model)
            for v in (bn.moving_mean, bn.moving_variance)]


def write_statistics(model: keras.Model, values: list[np.ndarray]) -> None:
    variables = [v for bn in batchnorm_layers(model) for v in (bn.moving_mean, bn.moving_variance)]
    for var, value in zip(variables, values, strict=True):
        var.assign(value)


def recompute_statistics(model: keras.Model, batches: Iterable) -> int:
    """Replace every BatchNorm layer's moving mean and variance by the mean of its batch statistics over
    ``batches`` (images, or (images, labels) pairs) under the model's current weights; return the number of
    batches seen. Weights are not changed (the forward pass in training mode only updates the statistics).
    Frozen layers keep theirs: Keras runs them in inference mode, so they would never be updated (a frozen
    backbone's in the first phase of fine-tuning, an ESR stage's earlier branches)."""
    layers = [bn for bn in batchnorm_layers(model) if bn.trainable]
    if not layers:
        return 0
    momenta = [bn.momentum for bn in layers]
    for bn in layers:
        bn.moving_mean.assign(keras.ops.zeros_like(bn.moving_mean))
        bn.moving_variance.assign(keras.ops.ones_like(bn.moving_variance))
    seen, images_seen = 0, 0
    try:
        for batch in batches:
            images = batch[0] if isinstance(batch, tuple | list) else batch
            n = int(keras.ops.shape(images)[0])
            seen, images_seen = seen + 1, images_seen + n
            for bn in layers:
                # Cumulative mean weighted by images: a short last batch weighs what its images do.
                bn.momentum = (images_seen - n) / images_seen
            model(images, training=True)
    finally:
        for bn, momentum in zip(layers, momenta, strict=True):
            bn.momentum = momentum
    return seen


class RecomputeBatchNorm(keras.callbacks.Callback):
    """Before every evaluation (the validation of each epoch, so also the checkpoint and the backup saved after
    it), sets each BatchNorm layer's moving statistics to the mean of its batch statistics on ``batches()``."""

    def __init__(self, batches: Callable[[], Iterable]):
        super().__init__()
        self.batches = batches

    def on_test_begin(self, logs=None):
        recompute_statistics(self.model, self.batches())


class StatisticsSwap:
    """Keeps the raw weights' moving statistics aside while the EMA weights are in the model, and the
    statistics recomputed for the EMA weights (recomputed only when training changed the weights since)."""

    def __init__(self, batches: Callable[[], Iterable]):
        self.batches = batches
        self.raw: list[np.ndarray] | None = None
        self.ema: list[np.ndarray] | None = None
        self.ema_step = -1

    def to_ema(self, model: keras.Model, step: int) -> None:
        self.raw = read_statistics(model)
        if self.ema is None or self.ema_step != step:
            recompute_statistics(model, self.batches())
            self.ema, self.ema_step = read_statistics(model), step
        else:
            write_statistics(model, self.ema)

    def to_raw(self, model: keras.Model) -> None:
        if self.raw is not None:
            write_statistics(model, self.raw)
