"""Classic CNNs the BTFER paper benchmarks: LeNet-5, AlexNet, ZFNet and VGGNet.

All are scratch-only and take the protocol's 1/255 input. Their original strides assume
224 px (AlexNet, ZFNet) or 32 px (LeNet-5); below 112 px the large-stride stems would
shrink a 48 px face to nothing, so they run at stride 1 there (the adaptation
ResNet-18's stem already makes for 48 px, see ``_blocks.SMALL_INPUT``).
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import BN_MOMENTUM, SMALL_INPUT
from fer_keras.models._head import fc_head, image_input, pool
from fer_keras.models.features import features


def lenet5(input_shape, num_classes, *, pretrain="scratch", pooling="flatten", weights_dir=None):
    """LeNet-5 with ReLU instead of tanh/scaled sigmoid; 32 px, its native input, is the floor."""
    inputs, x = image_input(input_shape)
    x = layers.Conv2D(6, 5, activation="relu", name="conv1")(x)
    x = layers.AveragePooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
    x = layers.AveragePooling2D(2, name="pool2")(x)
    x = features(pool(x, pooling))
    return keras.Model(inputs, fc_head(x, (120, 84), 0.0, num_classes), name="lenet5")


def _alexnet_body(x, res: int, *, zf: bool):
    """Five conv layers and three 3x3/2 max pools; ZFNet uses 7x7/2 and a strided conv2."""
    small = res < SMALL_INPUT
    kernel, stride = (7, 2) if zf else (11, 4)
    x = layers.Conv2D(96, kernel, strides=1 if small else stride, padding="same" if small else "valid",
                      activation="relu", name="conv1")(x)
    # BatchNorm stands in for the original local response normalisation.
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="conv1_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(256, 5, strides=2 if zf and not small else 1, padding="same", activation="relu", name="conv2")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="conv2_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    for i, filters in enumerate((384, 384, 256), 3):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool5")(x)


def _alexnet(input_shape, num_classes: int, pooling: str, *, zf: bool) -> keras.Model:
    inputs, x = image_input(input_shape)
    x = features(pool(_alexnet_body(x, input_shape[0], zf=zf), pooling))
    return keras.Model(inputs, fc_head(x, (4096, 4096), 0.5, num_classes), name="zfnet" if zf else "alexnet")


def alexnet(input_shape, num_classes, *, pretrain="scratch", pooling="flatten", weights_dir=None):
    """AlexNet, single tower; 11x11/4 stem from 112 px, 11x11/1 'same' below (48 px -> 5x5x256)."""
    return _alexnet(input_shape, num_classes, pooling, zf=False)


def zfnet(input_shape, num_classes, *, pretrain="scratch", pooling="flatten", weights_dir=None):
    """ZFNet: AlexNet with a 7x7/2 first conv and a stride-2 conv2; both stride 1 below 112 px."""
    return _alexnet(input_shape, num_classes, pooling, zf=True)


def vggnet(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None):
    """Four VGG stages (64-512) with BatchNorm, two FC 4096 + Dropout 0.5.

    The 48 px original flattens a 3x3x512 map; the suite pools globally by default so the
    FC layers stay 2M weights at 224 px too (``pooling="flatten"`` restores the original).
    """
    inputs, x = image_input(input_shape)
    for s, filters in enumerate((64, 128, 256, 512), 1):
        for i in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{s}_conv{i}")(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{s}_bn{i}")(x)
            x = layers.ReLU(name=f"block{s}_relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{s}_pool")(x)
    x = features(pool(x, pooling))
    return keras.Model(inputs, fc_head(x, (4096, 4096), 0.5, num_classes), name="vggnet")
