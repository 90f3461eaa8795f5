"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015), scratch, 1/255 input.

Nine inception modules with the paper's filter table; the two auxiliary classifiers
(a training aid for 2014-era optimisers) are left out. Below 112 px the 7x7/2 stem and
its max pool are replaced by a 3x3/1 conv (as in ``_blocks.resnet_stem``), so a 48 px
face reaches the inception stages at 24x24 instead of 6x6.
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import SMALL_INPUT, conv_relu
from fer_keras.models._head import image_input, pool, softmax_output
from fer_keras.models.features import features

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), Table 1 of the paper.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def inception_module(x, name: str):
    f1, r3, f3, r5, f5, fp = INCEPTION[name]
    p = f"inception{name}"
    b1 = conv_relu(x, f1, 1, name=f"{p}_1x1")
    b3 = conv_relu(conv_relu(x, r3, 1, name=f"{p}_3x3_reduce"), f3, 3, name=f"{p}_3x3")
    b5 = conv_relu(conv_relu(x, r5, 1, name=f"{p}_5x5_reduce"), f5, 5, name=f"{p}_5x5")
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{p}_pool")(x)
    bp = conv_relu(bp, fp, 1, name=f"{p}_pool_proj")
    return layers.Concatenate(name=f"{p}_concat")([b1, b3, b5, bp])


def _maxpool(x, name: str):
    return layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)


def googlenet(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None):
    inputs, x = image_input(input_shape)
    if input_shape[0] < SMALL_INPUT:
        x = conv_relu(x, 64, 3, name="stem_conv1")
    else:
        x = _maxpool(conv_relu(x, 64, 7, 2, name="stem_conv1"), "stem_pool1")
    x = conv_relu(conv_relu(x, 64, 1, name="stem_conv2_reduce"), 192, 3, name="stem_conv2")
    x = _maxpool(x, "stem_pool2")
    x = inception_module(inception_module(x, "3a"), "3b")
    x = _maxpool(x, "pool3")
    for name in ("4a", "4b", "4c", "4d", "4e"):
        x = inception_module(x, name)
    x = _maxpool(x, "pool4")
    x = inception_module(inception_module(x, "5a"), "5b")
    x = features(pool(x, pooling))
    x = layers.Dropout(0.4, name="dropout")(x)
    outputs = softmax_output(x, num_classes)
    return keras.Model(inputs, outputs, name="googlenet")
