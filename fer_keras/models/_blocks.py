"""Building blocks shared by several model families."""

from __future__ import annotations

from keras import layers

#: PyTorch's default (0.1 there): moving statistics settle within the few hundred steps a
#: small FER dataset gives; Keras' 0.99 leaves them far off and validation collapses.
BN_MOMENTUM = 0.9
#: Below this input size (px) the builders with a large-stride stem (ResNet, GoogLeNet, AlexNet,
#: ZFNet) run it at stride 1, or a 48 px face would shrink to nothing before the first stage.
SMALL_INPUT = 112


def conv_relu(x, filters: int, kernel: int = 3, stride: int = 1, *, name: str):
    """'same' convolution with a fused ReLU, no BatchNorm (self-designed CNNs, GoogLeNet)."""
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu", name=name)(x)


def conv3_relu(x, filters: int, name: str):
    """3x3 :func:`conv_relu`: the self-designed CNNs' building block."""
    return conv_relu(x, filters, 3, name=name)


def conv_bn_act(
    x,
    filters: int,
    kernel: int = 3,
    stride: int = 1,
    *,
    name: str,
    conv_name: str | None = None,
    padding: str = "same",
    use_bias: bool = False,
    activation: str | None = "relu",
    batch_norm: bool = True,
    bn_momentum: float = BN_MOMENTUM,
    bn_epsilon: float = 1e-3,
):
    """Conv -> BatchNorm -> activation, layers ``{name}_conv`` (or ``conv_name``), ``{name}_bn``, ``{name}_relu``.

    One helper for every family, so layer names (which saved models, VGGFace weight loading and
    RepVGG folding match on) follow one rule. ``padding="symmetric"`` zero-pads ``kernel // 2`` on
    every side (``{conv}_pad``) before a 'valid' conv, as PyTorch does: TF's 'same' pads a strided
    conv bottom/right only. ``activation=None`` ends at the BatchNorm (or the conv without it).
    """
    conv_name = conv_name or f"{name}_conv"
    if padding == "symmetric":
        if kernel // 2:
            x = layers.ZeroPadding2D(kernel // 2, name=f"{conv_name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=use_bias, name=conv_name)(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=f"{name}_bn")(x)
    if activation == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)
    if activation is not None:
        return layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


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
    y = conv_bn_act(x, filters, 3, stride, name=f"{name}_1")
    y = conv_bn_act(y, filters, 3, name=f"{name}_2", activation=None)
    if se_ratio:
        y = squeeze_excite(y, se_ratio, name=f"{name}_se")
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn_act(x, filters, 1, stride, name=f"{name}_down", padding="valid", activation=None)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet_stem(x, res: int, *, name: str = "stem"):
    """3x3 stride-1 stem for small faces (48 px, the paper's ResNet18); 7x7/2 + max pool from SMALL_INPUT."""
    if res < SMALL_INPUT:
        return conv_bn_act(x, 64, 3, 1, name=name)
    x = conv_bn_act(x, 64, 7, 2, name=name)
    return layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)


def resnet_stage(x, filters: int, blocks: int, stride: int, *, name: str, se_ratio: int | None = None):
    for i in range(blocks):
        x = basic_block(x, filters, stride if i == 0 else 1, name=f"{name}_block{i + 1}", se_ratio=se_ratio)
    return x
