"""A compact VGG for 48 px faces that trains fast on a CPU: the fast recipe's model (ours).

After the VGGNet of Khaireddin & Chen 2021 ("Facial Emotion Recognition: State of the
Art Performance on FER2013", arXiv:2105.03588; 73.28 % on FER2013, registered here as
``vggnet``): stages of two 3x3 conv-BN-ReLU layers, each followed by a 2x2 max pool. That
network keeps 64 channels at the full 48x48 and costs about 0.9 GFLOPs per image; this
one halves the resolution after one narrow stem convolution, narrows the stages
(width, 2 x width, 4 x width; 48, 96, 192 by default), pools globally and ends in one
Dense 256, for about 0.11 GFLOPs per image (forward) and 0.7M parameters.
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import conv_bn_act
from fer_keras.models._head import fc_head, image_input, pool
from fer_keras.models.features import features


def vgg_lite(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None,
             width: int, dropout: float) -> keras.Model:
    """``width``: channels of the first stage (the stem has half, later stages double); 64 is ~2x the cost."""
    inputs, x = image_input(input_shape)
    x = conv_bn_act(x, width // 2, name="stem")
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for s, filters in enumerate((width, 2 * width, 4 * width), 1):
        x = conv_bn_act(x, filters, name=f"block{s}_1")
        x = conv_bn_act(x, filters, name=f"block{s}_2")
        if s < 3:
            x = layers.MaxPooling2D(2, name=f"block{s}_pool")(x)
    x = features(pool(x, pooling))
    return keras.Model(inputs, fc_head(x, (256,), dropout, num_classes), name="vgg_lite")
