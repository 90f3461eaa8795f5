"""SE-ResNet-18 (Huang et al., "Facial expression recognition based on SE-ResNet", Sci. Rep. 2023).

ResNet-18 with a squeeze-and-excitation block (Hu et al., CVPR 2018) in every basic block,
applied to the residual branch before the addition; GAP and a 7-way softmax on top
(~11.27M parameters at 224 px). The paper shows each SE block's feature maps;
:func:`se_feature_model` returns them.
"""

from __future__ import annotations

import keras

from fer_keras.models._head import image_input, pool, softmax_output
from fer_keras.models.features import features
from fer_keras.models.resnet import resnet_features

SE_SCALE = "_se_scale"  # SE-scaled residual branch of a block (its "feature maps")
SE_ATTENTION = "_se_expand"  # the block's channel attention, sigmoid in (0, 1)


def se_resnet18(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None,
                ratio: int) -> keras.Model:
    inputs, x = image_input(input_shape)
    x = resnet_features(x, input_shape[0], se_ratio=ratio)
    x = features(pool(x, pooling))
    outputs = softmax_output(x, num_classes)
    return keras.Model(inputs, outputs, name="se_resnet18")


def se_feature_model(model: keras.Model, kind: str = "features") -> keras.Model:
    """A model mapping the same input to every SE block's output, in network order, as a dict.

    ``kind="features"``: the SE-scaled feature maps (b, h, w, c) of each block, what the paper
    visualises; ``kind="attention"``: the channel weights (b, 1, 1, c) each block applies.
    Keys are block names such as ``stage2_block1``.
    """
    suffix = {"features": SE_SCALE, "attention": SE_ATTENTION}.get(kind)
    if suffix is None:
        raise ValueError(f"kind must be 'features' or 'attention', got {kind!r}")
    outputs = {layer.name[: -len(suffix)]: layer.output for layer in model.layers if layer.name.endswith(suffix)}
    if not outputs:
        raise ValueError(f"model {model.name!r} has no squeeze-and-excitation blocks")
    return keras.Model(model.inputs, outputs, name=f"{model.name}_se_{kind}")
