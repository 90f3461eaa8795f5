"""The BTFER paper's self-designed ensemble: three CNNs whose softmax outputs are averaged.

CNN-1 follows the paper (Conv 32/64/128 3x3 + BN + ReLU, two max pools with Dropout
0.25, GAP, Dense 512 + Dropout 0.25, softmax). The paper only says CNN-2 and CNN-3
"vary the conv stacks"; the suite makes CNN-2 wider (two convs of 64 and of 128) and
CNN-3 deeper (three stages of two convs), so the members see different receptive fields.
The members train jointly on the loss of the average; ``features.branch_outputs_model``
exposes each member's softmax (``branch1_predictions`` ...).
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import conv_bn_act
from fer_keras.models._head import image_input
from fer_keras.models.features import branch_features
from fer_keras.registry import PREDICTIONS

#: Conv filters per stage (each stage ends with MaxPool 2 + Dropout 0.25).
MEMBERS = (((32, 64), (128,)), ((64, 64), (128, 128)), ((32, 32), (64, 64), (128, 128)))


def member(x, stages, num_classes: int, *, name: str):
    for s, filters in enumerate(stages, 1):
        for i, f in enumerate(filters, 1):
            x = conv_bn_act(x, f, 3, name=f"{name}_s{s}_c{i}")
        x = layers.MaxPooling2D(2, name=f"{name}_s{s}_pool")(x)
        x = layers.Dropout(0.25, name=f"{name}_s{s}_drop")(x)
    x = branch_features(layers.GlobalAveragePooling2D(name=f"{name}_gap")(x), name)
    x = layers.Dense(512, activation="relu", name=f"{name}_dense")(x)
    x = layers.Dropout(0.25, name=f"{name}_dense_drop")(x)
    return layers.Dense(num_classes, activation="softmax", name=f"{name}_predictions", dtype="float32")(x)


def ensemble(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None):
    inputs, x = image_input(input_shape)
    outs = [
        member(x, stages, num_classes, name=f"branch{i}") for i, stages in enumerate(MEMBERS, 1)
    ]
    return keras.Model(inputs, layers.Average(name=PREDICTIONS, dtype="float32")(outs), name="ensemble")
