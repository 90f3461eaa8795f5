"""The classification heads the protocol puts on top of a backbone (the feature-extractor convention
they and every builder follow is :mod:`fer_keras.models.features`)."""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models.features import features
from fer_keras.models.preprocessing import normalise
from fer_keras.registry import BACKBONE, PREDICTIONS


def image_input(input_shape, preprocessing: str = "rescale"):
    """The model's ``image`` input (0-255 RGB) and its normalised tensor: preprocessing lives in the graph."""
    inputs = keras.Input(shape=input_shape, name="image")
    return inputs, normalise(inputs, preprocessing)


def softmax_output(x, num_classes: int):
    """The class probabilities every model ends in, under the name the evaluators look up; float32 even
    under a mixed-precision policy, so the loss and the probabilities keep full precision."""
    return layers.Dense(num_classes, activation="softmax", name=PREDICTIONS, dtype="float32")(x)


def fc_head(x, units: tuple[int, ...], dropout: float, num_classes: int):
    """Dense ReLU layers ``fc1``.. (each followed by Dropout when ``dropout``), then the softmax."""
    for i, n in enumerate(units, 1):
        x = layers.Dense(n, activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return softmax_output(x, num_classes)


def check_option(option: str, value, choices: tuple) -> None:
    """A model option outside its choices fails at build time, naming the option and the choices."""
    if value not in choices:
        raise ValueError(f"{option} must be one of {choices}, got {value!r}")


def pool(x, pooling: str):
    """GlobalAveragePooling2D, or Flatten for the paper's rows marked '*'."""
    if pooling == "gap":
        return layers.GlobalAveragePooling2D(name="pool")(x)
    if pooling == "flatten":
        return layers.Flatten(name="pool")(x)
    raise ValueError(f"pooling must be 'gap' or 'flatten', got {pooling!r}")


def protocol_head(x, num_classes: int):
    """Dense 256 ReLU + Dropout 0.2, Dense 256 ReLU, softmax (PROTOCOL.md, 'Initialisation')."""
    x = layers.Dense(256, activation="relu", name="head_dense1")(x)
    x = layers.Dropout(0.2, name="head_dropout")(x)
    x = layers.Dense(256, activation="relu", name="head_dense2")(x)
    return softmax_output(x, num_classes)


def classifier_on_backbone(
    backbone: keras.Model,
    input_shape,
    num_classes: int,
    *,
    preprocessing: str,
    pooling: str,
    name: str,
) -> keras.Model:
    """Wrap a feature-map backbone as ``Input -> normalisation -> backbone -> pool -> head``.

    The backbone stays a nested model named ``backbone`` so fine-tuning can freeze it.
    """
    if backbone.name != BACKBONE:
        raise ValueError(f"the backbone model must be named {BACKBONE!r}, got {backbone.name!r}")
    inputs, x = image_input(input_shape, preprocessing)
    x = backbone(x)
    x = features(pool(x, pooling))
    return keras.Model(inputs, protocol_head(x, num_classes), name=name)
