"""RepVGG (Ding et al., CVPR 2021): multi-branch for training, one 3x3 conv per block to deploy.

Training-time block: 3x3 conv+BN, 1x1 conv+BN and (when shapes allow) an identity BN,
summed then ReLU. ``reparameterize`` folds each block into a single biased 3x3 conv,
which computes the same function in inference mode. Width/depth follow RepVGG-A0
(a=0.75, b=2.5, blocks 1-2-4-14-1). Keras ships no RepVGG weights: scratch only. The
five stride-2 stages bring 48 px to 2x2 and 32 px to 1x1, so 32 px is the floor.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from fer_keras.models._blocks import BN_MOMENTUM, conv_bn_act
from fer_keras.models._head import image_input, pool, protocol_head
from fer_keras.models.features import features
from fer_keras.registry import PREDICTIONS

#: (blocks, width) per stage for RepVGG-A0; the first block of each stage has stride 2.
A0_STAGES = ((1, 48), (2, 48), (4, 96), (14, 192), (1, 1280))


def _branch(x, filters: int, kernel: int, stride: int, name: str):
    # Symmetric padding as in the PyTorch original: TF's "same" pads a strided 3x3 conv
    # bottom/right only, which would shift its centre off the 1x1 branch's sample point.
    return conv_bn_act(x, filters, kernel, stride, name=name, padding="symmetric", activation=None)


def repvgg_block(x, filters: int, stride: int, *, name: str, deploy: bool = False):
    """One RepVGG block; ``deploy`` builds the fused form (a single biased 3x3 conv)."""
    if deploy:
        y = conv_bn_act(x, filters, 3, stride, name=name, conv_name=f"{name}_fused", padding="symmetric",
                        use_bias=True, activation=None, batch_norm=False)
    else:
        branches = [
            _branch(x, filters, 3, stride, f"{name}_3x3"),
            _branch(x, filters, 1, stride, f"{name}_1x1"),
        ]
        if stride == 1 and x.shape[-1] == filters:
            branches.append(layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_id_bn")(x))
        y = layers.Add(name=f"{name}_add")(branches)
    return layers.ReLU(name=f"{name}_relu")(y)


def repvgg(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None, deploy: bool):
    inputs, x = image_input(input_shape)
    for s, (blocks, width) in enumerate(A0_STAGES):
        for b in range(blocks):
            x = repvgg_block(
                x, width, 2 if b == 0 else 1, name=f"stage{s}_block{b + 1}", deploy=deploy
            )
    outputs = protocol_head(features(pool(x, pooling)), num_classes)
    return keras.Model(inputs, outputs, name="repvgg")


def _fold_bn(
    kernel: np.ndarray, bn: keras.layers.BatchNormalization
) -> tuple[np.ndarray, np.ndarray]:
    """BN(conv(x)) as one conv: scale the kernel by gamma/std, shift the bias."""
    gamma, beta, mean, var = (
        np.asarray(w) for w in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
    )
    t = gamma / np.sqrt(var + bn.epsilon)
    return kernel * t, beta - mean * t


def fuse_block(model: keras.Model, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The 3x3 kernel and bias equivalent to block ``name`` of a training-time model."""
    k3, b3 = _fold_bn(
        np.asarray(model.get_layer(f"{name}_3x3_conv").kernel), model.get_layer(f"{name}_3x3_bn")
    )
    k1 = np.asarray(model.get_layer(f"{name}_1x1_conv").kernel)
    k1, b1 = _fold_bn(
        np.pad(k1, ((1, 1), (1, 1), (0, 0), (0, 0))), model.get_layer(f"{name}_1x1_bn")
    )
    kernel, bias = k3 + k1, b3 + b1
    try:
        id_bn = model.get_layer(f"{name}_id_bn")
    except ValueError:
        return kernel, bias
    channels = kernel.shape[-1]
    identity = np.zeros((3, 3, channels, channels), dtype=kernel.dtype)
    identity[1, 1, np.arange(channels), np.arange(channels)] = 1.0
    kid, bid = _fold_bn(identity, id_bn)
    return kernel + kid, bias + bid


def reparameterize(model: keras.Model) -> keras.Model:
    """The deploy form of a training-time RepVGG: same outputs in inference mode, plain VGG body."""
    head = model.get_layer(PREDICTIONS)
    pooling = "flatten" if isinstance(model.get_layer("pool"), layers.Flatten) else "gap"
    deployed = repvgg(tuple(model.input_shape[1:]), head.units, pooling=pooling, deploy=True)
    for layer in deployed.layers:
        if layer.name.endswith("_fused"):
            kernel, bias = fuse_block(model, layer.name.removesuffix("_fused"))
            layer.set_weights([kernel, bias])
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return deployed
