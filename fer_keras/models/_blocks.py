"""Building blocks shared by several model families."""

from __future__ import annotations

from keras import layers

#: PyTorch's default (0.1 there): moving statistics settle within the few hundred steps a
#: small FER dataset gives; Keras' 0.99 leaves them far off and validation collapses.
BN_MOMENTUM = 0.9


def conv3_relu(x, filters: int, name: str):
    """3x3 'same' convolution with ReLU, no BatchNorm: the self-designed CNNs' building block."""
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)


def conv_bn_relu(x, filters: int, kernel: int = 3, stride: int = 1, *, name: str):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def squeeze_excite(x, ratio: int, *, name: str):
    """Squeeze-and-excitation (Hu et al. 2018): GAP -> Dense C/r ReLU -> Dense C sigmoid -> scale."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = layers.Dense(max(channels // ratio, 1), activation="relu", name=f"{name}_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", name=f"{name}_expand")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def basic_block(x, filters: int, stride: int = 1, *, name: str, se_ratio: int | None = None):
    """ResNet basic block (two 3x3 convs), optionally with an SE block before the addition."""
    shortcut = x
    y = conv_bn_relu(x, filters, 3, stride, name=f"{name}_1")
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_2_bn")(y)
    if se_ratio:
        y = squeeze_excite(y, se_ratio, name=f"{name}_se")
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_down_conv")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_down_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet_stem(x, res: int, *, name: str = "stem"):
    """3x3 stride-1 stem for small faces (48 px, the paper's ResNet18); 7x7/2 + max pool at >= 112 px."""
    if res < 112:
        return conv_bn_relu(x, 64, 3, 1, name=name)
    x = conv_bn_relu(x, 64, 7, 2, name=name)
    return layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)


def resnet_stage(x, filters: int, blocks: int, stride: int, *, name: str, se_ratio: int | None = None):
    for i in range(blocks):
        x = basic_block(x, filters, stride if i == 0 else 1, name=f"{name}_block{i + 1}", se_ratio=se_ratio)
    return x
