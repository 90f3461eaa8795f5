"""The BTFER paper's modular network: a local and a global sub-network side by side.

Each sub-network is three Conv + MaxPool pairs, Flatten and Dropout; the local one uses
3x3 kernels, the global one 7x7 (the paper says only "larger kernels"); their features
are concatenated into Dense 256 + Dropout 0.5 and the softmax. The paper counts 24 layers;
this port has 22 Keras layers counting the input and the preprocessing layer (the
paper's exact split of the remaining two is not published).
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._head import image_input, softmax_output
from fer_keras.models.features import features

FILTERS = (32, 64, 128)


def subnetwork(x, kernel: int, pooling: str, *, name: str):
    for i, filters in enumerate(FILTERS, 1):
        x = layers.Conv2D(
            filters, kernel, padding="same", activation="relu", name=f"{name}_conv{i}"
        )(x)
        x = layers.MaxPooling2D(2, name=f"{name}_pool{i}")(x)
    x = (
        layers.Flatten(name=f"{name}_flatten")(x)
        if pooling == "flatten"
        else (layers.GlobalAveragePooling2D(name=f"{name}_gap")(x))
    )
    return layers.Dropout(0.25, name=f"{name}_dropout")(x)


def modular(input_shape, num_classes, *, pretrain="scratch", pooling="flatten", weights_dir=None):
    inputs, x = image_input(input_shape)
    local = subnetwork(x, 3, pooling, name="local")
    global_ = subnetwork(x, 7, pooling, name="global")
    x = features(layers.Concatenate(name="concat")([local, global_]))
    x = layers.Dense(256, activation="relu", name="dense")(x)
    x = layers.Dropout(0.5, name="dense_dropout")(x)
    outputs = softmax_output(x, num_classes)
    return keras.Model(inputs, outputs, name="modular")
