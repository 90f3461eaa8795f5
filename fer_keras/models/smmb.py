"""SMMB, the BTFER paper's single-model multi-branch network (PROTOCOL.md, 'Self-designed').

Shared Conv 32/64/64 3x3; branch 1 ("face"): MaxPool, Conv 128, Flatten, Dense 64;
branch 2 ("emotion"): Conv 128, MaxPool, Conv 256, self-attention over the spatial
positions (MultiHeadAttention, residual + LayerNormalization), Dense 128 + Dropout 0.5,
Flatten; the two are concatenated into one softmax. The paper gives no head count: 4
heads of 64. Attention is quadratic in the (res/2)^2 positions (12,544 at 224 px), so
the suite caps SMMB at 112 px. The branches have no softmax of their own;
``features.branch_outputs_model`` returns their features (``branch1_features`` ...).
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import conv3_relu
from fer_keras.models._head import image_input, softmax_output
from fer_keras.models.features import features


def smmb(
    input_shape,
    num_classes,
    *,
    pretrain="scratch",
    pooling="flatten",
    weights_dir=None,
    num_heads: int,
    key_dim: int,
):
    inputs, x = image_input(input_shape)
    for i, filters in enumerate((32, 64, 64), 1):
        x = conv3_relu(x, filters, f"shared_conv{i}")

    a = layers.MaxPooling2D(2, name="face_pool")(x)
    a = conv3_relu(a, 128, "face_conv")
    a = layers.Flatten(name="face_flatten")(a)
    a = layers.Dense(64, activation="relu", name="branch1_features")(a)

    b = conv3_relu(x, 128, "emotion_conv1")
    b = layers.MaxPooling2D(2, name="emotion_pool")(b)
    b = conv3_relu(b, 256, "emotion_conv2")
    b = layers.Reshape((-1, b.shape[-1]), name="emotion_tokens")(b)
    attended = layers.MultiHeadAttention(num_heads, key_dim, name="emotion_attention")(b, b)
    b = layers.Add(name="emotion_residual")([b, attended])
    b = layers.LayerNormalization(name="emotion_norm")(b)
    b = layers.Dense(128, activation="relu", name="emotion_dense")(b)
    b = layers.Dropout(0.5, name="emotion_dropout")(b)
    b = layers.Flatten(name="branch2_features")(b)

    x = features(layers.Concatenate(name="concat")([a, b]))
    outputs = softmax_output(x, num_classes)
    return keras.Model(inputs, outputs, name="smmb")
