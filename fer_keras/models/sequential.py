"""The BTFER paper's self-designed sequential CNNs (PROTOCOL.md, 'Self-designed')."""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models.preprocessing import Preprocess
from fer_keras.registry import PREDICTIONS, register_model


def _conv(x, filters: int, name: str):
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)


@register_model(
    family="custom",
    paper_name="Sequential Simple",
    description="Small sequential CNN for edge devices: 4 convs, 3 max pools, Dense 512",
    min_resolution=16,
    default_pooling="flatten",
    params={48: 1_350_791, 224: 25_861_255},
    test_resolutions=(32,),
)
def sequential_simple(input_shape, num_classes, *, pretrain="scratch", pooling="flatten", weights_dir=None):
    inputs = keras.Input(shape=input_shape, name="image")
    x = Preprocess("rescale", name="preprocess")(inputs)
    x = _conv(x, 32, "conv1")
    x = _conv(x, 64, "conv2")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Dropout(0.1, name="drop1")(x)
    x = _conv(x, 128, "conv3")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv(x, 64, "conv4")
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = layers.Flatten(name="flatten")(x) if pooling == "flatten" else layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(512, activation="relu", name="dense")(x)
    x = layers.Dropout(0.2, name="drop2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name=PREDICTIONS)(x)
    return keras.Model(inputs, outputs, name="sequential_simple")
