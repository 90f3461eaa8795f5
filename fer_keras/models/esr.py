"""ESR, Ensembles with Shared Representations (Siqueira et al., AAAI 2020).

A shared convolutional base learns low- and mid-level features; ``branches`` independent
convolutional branches learn high-level ones, each ending in its own softmax. The loss is
the sum of the branch losses (all against the same labels); the prediction is the mean
of the branch softmaxes. Layer sizes follow the authors' code (``model/ml/esr_9.py``):
base Conv 64 5x5, 128 3x3 + max pool, 128, 128 + max pool; branch Conv 128, 256 + max
pool, 256, 512, GAP, Dense. 9 branches for in-the-wild data, 4 for lab data.

The model is one Keras model with one output, ``predictions`` (the branch mean), so
evaluation, cross-domain tests and TFLite export treat it like any other model;
:class:`BranchEnsemble` overrides ``compute_loss`` to sum the branch losses and
:func:`branch_probs_model` lists the branch softmaxes (``features.branch_outputs_model`` keys
them by name). Training (joint, or the paper's progressive schedule) is in :mod:`fer_keras.train.esr`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from fer_keras.models._blocks import conv_bn_act
from fer_keras.models._head import check_option, image_input
from fer_keras.models.features import branch_features
from fer_keras.registry import PREDICTIONS

#: The authors' valid (unpadded) convolutions need >= 54 px; below this size 'auto' pads.
VALID_FROM = 64


@keras.saving.register_keras_serializable(package="fer_keras")
class BranchMean(layers.Layer):
    """Mean of the branch softmaxes; the stacked branches ride along for :meth:`BranchEnsemble.compute_loss`."""

    def call(self, branches):
        stacked = ops.stack(branches, axis=1)  # (batch, branches, classes)
        mean = ops.mean(stacked, axis=1)
        try:
            # The loss needs every branch but Keras hands compute_loss only the model output; the
            # TensorFlow tensors (symbolic and eager) take an attribute, as Keras' own masks do.
            mean._fer_branch_probs = stacked
        except AttributeError:  # other backends: compute_loss recomputes the branches
            pass
        return mean

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="fer_keras")
class BranchEnsemble(keras.Model):
    """A functional model whose output averages branch softmaxes and whose loss sums branch losses."""

    def branch_probs(self, x, y_pred, training: bool = False):
        """(batch, branches, classes) for the batch ``y_pred`` was computed from."""
        stacked = getattr(y_pred, "_fer_branch_probs", None)
        if stacked is None:
            stacked = ops.stack(branch_probs_model(self)(x, training=training), axis=1)
        return stacked

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # ESR has no regularisation losses, so the parent's loss of each branch is that branch's
        # compiled loss (class weights included); their sum is the paper's loss.
        stacked = self.branch_probs(x, y_pred, training)
        return ops.sum(ops.stack([
            super(BranchEnsemble, self).compute_loss(x, y, stacked[:, i], sample_weight, training=training)
            for i in range(stacked.shape[1])
        ]))


def _branch_tensors(model: keras.Model) -> list:
    inputs = model.get_layer(PREDICTIONS).input
    return list(inputs) if isinstance(inputs, list | tuple) else [inputs]


def branch_probs_model(model: keras.Model) -> keras.Model:
    """The same input mapped to the list of branch softmaxes (branch 1 first)."""
    return keras.Model(model.inputs, _branch_tensors(model), name=f"{model.name}_branches")


def num_branches(model: keras.Model) -> int:
    return len(_branch_tensors(model))


def _conv(x, filters: int, kernel: int, padding: str, *, name: str, pool: bool = False):
    """The authors' conv (with bias) + BN + ReLU, then a 2x2 max pool where they pool."""
    x = conv_bn_act(x, filters, kernel, name=name, padding=padding, use_bias=True)
    return layers.MaxPooling2D(2, name=f"{name}_pool")(x) if pool else x


def shared_base(x, padding: str):
    x = _conv(x, 64, 5, padding, name="base1")
    x = _conv(x, 128, 3, padding, name="base2", pool=True)
    x = _conv(x, 128, 3, padding, name="base3")
    return _conv(x, 128, 3, padding, name="base4", pool=True)


def branch(x, num_classes: int, padding: str, *, name: str):
    x = _conv(x, 128, 3, padding, name=f"{name}_1")
    x = _conv(x, 256, 3, padding, name=f"{name}_2", pool=True)
    x = _conv(x, 256, 3, padding, name=f"{name}_3")
    x = _conv(x, 512, 3, "same", name=f"{name}_4")  # padded in the original too
    x = branch_features(layers.GlobalAveragePooling2D(name=f"{name}_gap")(x), name)
    return layers.Dense(num_classes, activation="softmax", name=f"{name}_predictions")(x)


def esr(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None, branches: int,
        schedule: str, padding: str) -> keras.Model:
    """``padding='auto'`` keeps the authors' unpadded convolutions from 64 px (they used 96) and
    pads below, where unpadded ones would shrink a 48 px face to nothing."""
    check_option("pooling (esr pools each branch globally)", pooling, ("gap",))
    res = input_shape[0]
    if padding == "auto":
        padding = "valid" if res >= VALID_FROM else "same"
    inputs, x = image_input(input_shape)  # the authors fed [0, 1] RGB
    shared = shared_base(x, padding)
    if padding == "valid" and min(shared.shape[1:3]) < 10:
        raise ValueError(f"esr with unpadded convolutions needs at least 54 px, got {res}; use padding 'same'")
    probs = [branch(shared, num_classes, padding, name=f"branch{i + 1}") for i in range(branches)]
    outputs = BranchMean(name=PREDICTIONS)(probs)
    return BranchEnsemble(inputs, outputs, name="esr")
