"""What ``compile`` gets: the protocol's Adam + cross-entropy, or the fast recipe's options.

The protocol (PROTOCOL.md, 'Training') is Adam at a fixed learning rate that
ReduceLROnPlateau lowers. The fast recipe (configs/fast.yaml, ours, not the paper's)
may swap in AdamW with decoupled weight decay, a per-step schedule of linear warm-up
then cosine decay, label smoothing and an exponential moving average of the weights.
Mixed precision, XLA and steps_per_execution change speed, not the recipe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from fer_keras.config import RunConfig


def learning_rate(cfg: RunConfig, steps_per_epoch: int, epochs: int) -> float | keras.optimizers.schedules.CosineDecay:
    """A float for the plateau schedule (its callback lowers it); for cosine, warm-up and decay counted in
    steps so the rate moves every batch, ending at ``min_lr`` after ``epochs`` epochs."""
    if cfg.lr_schedule == "plateau":
        return cfg.lr
    warmup = cfg.warmup_epochs * steps_per_epoch
    decay = max((epochs - cfg.warmup_epochs) * steps_per_epoch, 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else cfg.lr, decay_steps=decay, alpha=min(cfg.min_lr / cfg.lr, 1.0),
        warmup_target=cfg.lr if warmup else None, warmup_steps=warmup)


def make_optimizer(cfg: RunConfig, model: keras.Model, steps_per_epoch: int, epochs: int
                   ) -> keras.optimizers.Optimizer:
    """Adam or AdamW (optionally with EMA); weight decay spares biases and normalisation scales (1-D weights),
    as usual for AdamW, since shrinking them only fights BatchNorm."""
    lr = learning_rate(cfg, steps_per_epoch, epochs)
    ema = {"use_ema": cfg.ema, "ema_momentum": cfg.ema_momentum}
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr, **ema)
    opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay, **ema)
    opt.exclude_from_weight_decay(var_list=[w for w in model.trainable_weights if len(w.shape) <= 1])
    return opt


def make_loss(cfg: RunConfig) -> keras.losses.Loss:
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)


def policy_name(mixed_precision: str) -> str:
    return "float32" if mixed_precision == "none" else mixed_precision


@contextlib.contextmanager
def dtype_policy(mixed_precision: str) -> Iterator[None]:
    """Build layers under ``mixed_precision``; restore the previous global policy afterwards (layers keep
    the policy they were built with, so later models in the same process are unaffected)."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy_name(mixed_precision))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)
