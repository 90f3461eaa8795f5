"""The BTFER paper's self-designed sequential CNNs (PROTOCOL.md, 'Self-designed')."""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import BN_MOMENTUM, conv3_relu
from fer_keras.models._head import fc_head, image_input, pool
from fer_keras.models.features import features


def _stem(x, dropout: float):
    """conv 32, conv 64, 2x2 max pool, Dropout: how every sequential network starts."""
    x = conv3_relu(x, 32, "conv1")
    x = conv3_relu(x, 64, "conv2")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    return layers.Dropout(dropout, name="drop1")(x)


def sequential_simple(input_shape, num_classes, *, pretrain="scratch", pooling="flatten", weights_dir=None):
    inputs, x = image_input(input_shape)
    x = _stem(x, 0.1)
    x = conv3_relu(x, 128, "conv3")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = conv3_relu(x, 64, "conv4")
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = features(pool(x, pooling))
    return keras.Model(inputs, fc_head(x, (512,), 0.2, num_classes), name="sequential_simple")


def _bn_block(x, filters: int, name: str, dropout: float = 0.0):
    """Conv 3x3 ReLU + BatchNorm (+ Dropout), then a 2x2 max pool: the networks' last block."""
    x = conv3_relu(x, filters, f"{name}_conv")
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def _sequential_deep(input_shape, num_classes, pooling: str, *, four: bool, name: str):
    inputs, x = image_input(input_shape)
    x = _stem(x, 0.25)
    x = conv3_relu(x, 128, "conv3")
    x = conv3_relu(x, 128, "conv4")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    if four:
        x = conv3_relu(x, 256, "conv5")
        x = conv3_relu(x, 256, "conv6")
        x = layers.MaxPooling2D(2, name="pool3")(x)
    x = _bn_block(x, 512, "block_512", dropout=0.2 if four else 0.0)
    x = features(pool(x, pooling))
    return keras.Model(inputs, fc_head(x, (1024,), 0.5, num_classes), name=name)


def sequential_3conv(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None):
    return _sequential_deep(input_shape, num_classes, pooling, four=False, name="sequential_3conv")


def sequential_4conv(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None):
    return _sequential_deep(input_shape, num_classes, pooling, four=True, name="sequential_4conv")
