"""Analytic FLOP count from layer shapes: the multiply-accumulates of Conv and Dense layers.

Counted per image, forward pass, 1 MAC = 2 FLOPs. Only convolutions (plain, depthwise,
separable, transposed) and Dense layers are counted: they hold almost all the arithmetic
of a CNN; batch norm, activations, pooling and element-wise ops are left out, so the
count is a slight underestimate. Layers with weights that the count does not understand
(attention, custom layers) are listed, never silently ignored.
"""

from __future__ import annotations

import math

import keras

#: Layers with weights whose arithmetic is negligible next to the convolutions.
_NEGLIGIBLE = {"BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization",
               "UnitNormalization", "PReLU", "Embedding"}


def _prod(shape) -> int:
    return math.prod(int(d) for d in shape if d is not None)


def _layer_macs(layer: keras.layers.Layer, in_shape, out_shape) -> int | None:
    """MACs per image of one call of ``layer`` (None when the layer is not understood)."""
    name = type(layer).__name__
    out_pixels = _prod(out_shape[1:-1])  # spatial positions (1 for Dense on a vector)
    if name == "DepthwiseConv2D":
        return out_pixels * int(in_shape[-1]) * layer.depth_multiplier * _prod(layer.kernel_size)
    if name == "SeparableConv2D":
        depth = int(in_shape[-1]) * layer.depth_multiplier
        return out_pixels * depth * _prod(layer.kernel_size) + out_pixels * depth * int(out_shape[-1])
    if name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        return _prod(in_shape[1:-1]) * int(in_shape[-1]) * _prod(layer.kernel_size) * int(out_shape[-1])
    if name in ("Conv1D", "Conv2D", "Conv3D"):
        groups = getattr(layer, "groups", 1) or 1
        return out_pixels * int(out_shape[-1]) * _prod(layer.kernel_size) * int(in_shape[-1]) // groups
    if name == "Dense":
        return _prod(in_shape[1:]) * int(out_shape[-1])
    return None


def count_flops(model: keras.Model) -> dict:
    """Forward FLOPs per image (2 x MACs of Conv/Dense layers) and the layers left uncounted."""
    macs, uncounted = 0, set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.Model):
            continue  # nested backbones: their own layers are visited one by one
        for node in layer._inbound_nodes:
            if not node.input_tensors or not node.output_tensors:
                continue
            n = _layer_macs(layer, node.input_tensors[0].shape, node.output_tensors[0].shape)
            if n is not None:
                macs += n
            elif layer.weights and type(layer).__name__ not in _NEGLIGIBLE:
                uncounted.add(f"{layer.name} ({type(layer).__name__})")
    return {"forward_flops": 2 * macs, "method": "analytic: 2 x MACs of Conv/Dense layers from layer shapes",
            "uncounted_layers": sorted(uncounted)}
