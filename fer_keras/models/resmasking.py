"""Residual Masking Network (Pham, Vu and Tran, ICPR 2020).

ResNet-34 (basic blocks [3, 4, 6, 3]) with a Masking Block after each of its four stages.
A Masking Block is a small U-Net built from residual blocks: the encoder doubles the
channels at each level (C -> 2C -> 4C ...), max-pooling between levels; the decoder
upsamples with a 2x2 transposed convolution, concatenates the skip and halves the
channels back; a last residual block returns to C channels. Its depth shrinks with the
stage's spatial size (4, 3, 2, 1 levels after stages 1-4, as in the authors'
``rmn/models/resmasking.py``), and the stage output becomes F + F * M.

Where this port decides:
- M is a sigmoid, in [0, 1] as the paper writes; the authors' code applies a softmax over
  channels. The last residual block of the mask ends in the sigmoid instead of ReLU (a ReLU
  first would confine M to [0.5, 1]).
- Below 112 px the stem is the protocol's 3x3 stride-1 convolution without pooling
  (``resnet_stem``), and a block's depth is lowered when the feature map cannot be halved
  that often into even sizes, so a 48 px face keeps a spatial extent at every stage.
- Head: GAP, Dropout 0.4, softmax (the authors' ``resmasking_dropout1``, their 74.14% model).
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import BN_MOMENTUM, basic_block, conv_bn_act, resnet_stage, resnet_stem
from fer_keras.models._head import image_input, pool, softmax_output
from fer_keras.models.features import features
from fer_keras.models.resnet import STAGE_FILTERS

MASK_DEPTHS = (4, 3, 2, 1)


def mask_depth(size: int, nominal: int) -> int:
    """``nominal`` levels, fewer when ``size`` cannot be halved into even sizes >= 2 that often."""
    depth = 1
    while depth < nominal and size % 2 == 0 and size // 2 >= 2:
        size //= 2
        depth += 1
    return depth


def _up(x, filters: int, *, name: str):
    x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _sigmoid_block(x, filters: int, *, name: str):
    """A basic residual block ending in a sigmoid instead of ReLU."""
    y = conv_bn_act(x, filters, 3, 1, name=f"{name}_1")
    y = conv_bn_act(y, filters, 3, name=f"{name}_2", activation=None)
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = conv_bn_act(x, filters, 1, name=f"{name}_down", padding="valid", activation=None)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("sigmoid", name=f"{name}_sigmoid")(y)


def masking_block(x, depth: int, *, name: str, growth: int = 2):
    """The mask M in [0, 1], same shape as ``x``: a ``depth``-level residual U-Net whose
    channels grow by ``growth`` per level (2 in the paper)."""
    channels = x.shape[-1]
    skips, y = [], x
    for level in range(depth):
        y = basic_block(y, channels * growth ** (level + 1), name=f"{name}_enc{level + 1}")
        if level < depth - 1:
            skips.append(y)
            y = layers.MaxPooling2D(2, name=f"{name}_pool{level + 1}")(y)
    for level in reversed(range(depth - 1)):
        filters = channels * growth ** (level + 1)
        y = _up(y, filters, name=f"{name}_up{level + 1}")
        y = layers.Concatenate(name=f"{name}_cat{level + 1}")([y, skips[level]])
        y = basic_block(y, filters, name=f"{name}_dec{level + 1}")
    return _sigmoid_block(y, channels, name=f"{name}_out")


def apply_mask(x, depth: int, *, name: str, growth: int = 2):
    """F + F * M."""
    m = masking_block(x, depth, name=name, growth=growth)
    return layers.Add(name=f"{name}_residual")([x, layers.Multiply(name=f"{name}_apply")([x, m])])


def resmasking_net(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None,
                   dropout: float, mask_growth: int, stage_blocks: tuple[int, ...]) -> keras.Model:
    """``mask_growth`` 1 keeps the masks' channels constant (~40M parameters instead of ~138M) and
    ``stage_blocks`` (1, 1, 1, 1) shortens the backbone: light variants for CPUs and quick tests;
    the catalog's defaults are the paper's."""
    inputs, x = image_input(input_shape)
    x = resnet_stem(x, input_shape[0])
    for i, (filters, blocks, nominal) in enumerate(zip(STAGE_FILTERS, stage_blocks, MASK_DEPTHS, strict=True)):
        x = resnet_stage(x, filters, blocks, 1 if i == 0 else 2, name=f"stage{i + 1}")
        depth = min(mask_depth(size, nominal) for size in x.shape[1:3])
        x = apply_mask(x, depth, name=f"mask{i + 1}", growth=mask_growth)
    x = features(pool(x, pooling))
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = softmax_output(x, num_classes)
    return keras.Model(inputs, outputs, name="resmasking_net")


def mask_model(model: keras.Model) -> keras.Model:
    """The masks M of each stage, as a dict ``{"mask1": ..., ...}``, for attention figures."""
    outputs = {f"mask{i}": model.get_layer(f"mask{i}_out_sigmoid").output for i in range(1, 5)}
    return keras.Model(model.inputs, outputs, name=f"{model.name}_masks")
