"""What ``compile`` gets: the protocol's Adam + cross-entropy, or the fast recipe's options.

The protocol (PROTOCOL.md, 'Training') is Adam at a fixed learning rate that
ReduceLROnPlateau lowers. The fast recipe (configs/fast.yaml, ours, not the paper's)
may swap in AdamW with decoupled weight decay, a per-step schedule of linear warm-up
then cosine decay, label smoothing and an exponential moving average of the weights, and
choose the best checkpoint by validation balanced accuracy (:class:`BalancedAccuracy`).
Mixed precision, XLA and steps_per_execution change speed, not the recipe.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

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


class LogitAdjustedLoss(keras.losses.Loss):
    """Cross-entropy of ``softmax(log p + tau * log prior)`` (Menon et al. 2021, 'logit-adjusted loss'): the
    model's own probabilities learn the classes' evidence without the training set's prior, so they suit a
    balanced target as they are. Training-only (models are saved without their loss)."""

    def __init__(self, log_prior: list[float], tau: float, label_smoothing: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.log_prior, self.tau, self.label_smoothing = list(log_prior), tau, label_smoothing

    def call(self, y_true, y_pred):
        logits = keras.ops.log(keras.ops.clip(keras.ops.cast(y_pred, "float32"), 1e-7, 1.0))
        logits = logits + self.tau * keras.ops.convert_to_tensor(self.log_prior, dtype="float32")
        return keras.losses.categorical_crossentropy(y_true, logits, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "log_prior": self.log_prior, "tau": self.tau,
                "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="fer_keras")
class BalancedAccuracy(keras.metrics.Metric):
    """Mean recall over the classes seen so far, as scikit-learn's ``balanced_accuracy_score``: per class, the
    (sample-weighted) count of its images and of those predicted as it, accumulated over batches. The true
    class is the argmax of ``y_true`` (one-hot, or soft and label-smoothed targets; integer labels also do);
    a class with no image yet is left out of the mean. Inputs are cast to float32 (mixed precision)."""

    def __init__(self, num_classes: int, name: str = "balanced_accuracy", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.num_classes = int(num_classes)
        self.hits = self.add_variable((self.num_classes,), initializer="zeros", dtype="float32", name="hits")
        self.support = self.add_variable((self.num_classes,), initializer="zeros", dtype="float32",
                                         name="support")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = keras.ops.cast(y_pred, "float32")
        y_true = keras.ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] != 1:
            true = keras.ops.argmax(keras.ops.cast(y_true, "float32"), axis=-1)
        else:  # integer labels, (batch,) or (batch, 1)
            true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        predicted = keras.ops.argmax(y_pred, axis=-1)
        support = keras.ops.one_hot(true, self.num_classes, dtype="float32")
        if sample_weight is not None:
            weight = keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1, 1))
            support = support * weight
        right = keras.ops.cast(keras.ops.equal(keras.ops.cast(true, "int32"), keras.ops.cast(predicted, "int32")),
                               "float32")
        self.support.assign_add(keras.ops.sum(support, axis=0))
        self.hits.assign_add(keras.ops.sum(support * keras.ops.expand_dims(right, -1), axis=0))

    def result(self):
        present = keras.ops.cast(self.support > 0, "float32")
        recall = self.hits / keras.ops.maximum(self.support, 1e-12)
        return keras.ops.sum(recall * present) / keras.ops.maximum(keras.ops.sum(present), 1.0)

    def reset_state(self):
        self.hits.assign(keras.ops.zeros_like(self.hits))
        self.support.assign(keras.ops.zeros_like(self.support))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def make_loss(cfg: RunConfig, class_counts: Sequence[int] | None = None) -> keras.losses.Loss:
    """Cross-entropy (with the config's label smoothing), or its logit-adjusted form, which needs the
    training split's ``class_counts`` in the model's class order."""
    if cfg.loss == "crossentropy":
        return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    if not class_counts or min(class_counts) <= 0:
        raise ValueError(f"loss 'logit_adjusted' needs every class's training count, got {class_counts}")
    total = float(sum(class_counts))
    return LogitAdjustedLoss([math.log(n / total) for n in class_counts], cfg.loss_tau, cfg.label_smoothing)


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
