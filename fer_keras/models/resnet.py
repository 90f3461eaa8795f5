"""ResNet-18 as the BTFER paper trained it from scratch (its best model at 48x48)."""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import resnet_stage, resnet_stem
from fer_keras.models._head import image_input, pool, softmax_output
from fer_keras.models.features import features

STAGE_FILTERS = (64, 128, 256, 512)


def resnet_features(x, res: int, blocks=(2, 2, 2, 2), *, se_ratio: int | None = None):
    """Stem plus four stages of basic blocks; returns the last feature map."""
    x = resnet_stem(x, res)
    for i, (filters, n) in enumerate(zip(STAGE_FILTERS, blocks, strict=True)):
        x = resnet_stage(x, filters, n, 1 if i == 0 else 2, name=f"stage{i + 1}", se_ratio=se_ratio)
    return x


def resnet18(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None):
    inputs, x = image_input(input_shape)
    x = resnet_features(x, input_shape[0])
    x = features(pool(x, pooling))
    x = layers.Dropout(0.2, name="head_dropout1")(x)
    x = layers.Dense(1024, activation="relu", name="head_dense")(x)
    x = layers.Dropout(0.5, name="head_dropout2")(x)
    outputs = softmax_output(x, num_classes)
    return keras.Model(inputs, outputs, name="resnet18")
