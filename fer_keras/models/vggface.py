"""VGGFace backbones (VGG16 v1; ResNet-50 and SE-ResNet-50 v2) and their weight loader.

The keras-vggface project (github.com/rcmalli/keras-vggface, weight release v2.0) no
longer imports on Keras 3, so the three no-top networks are rebuilt here with the same
layer names and weight shapes, and its HDF5 files (Keras 2 layout: root attribute
``layer_names``, per-layer ``weight_names``) are read by layer name with h5py. Keras 3
forbids ``/`` in layer names, so ``conv1/7x7_s2/bn`` becomes ``conv1_7x7_s2_bn``.
VGGFace weights expect BGR input minus a per-channel mean (``vggface_v1``/``vggface_v2``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import keras
import numpy as np
from keras import layers

from fer_keras.models._blocks import conv_bn_act
from fer_keras.models._head import classifier_on_backbone
from fer_keras.models.weights import find_weights
from fer_keras.registry import BACKBONE

log = logging.getLogger(__name__)

_RELEASE = "https://github.com/rcmalli/keras-vggface/releases/download/v2.0"
WEIGHT_FILES = {
    "vgg16": "rcmalli_vggface_tf_notop_vgg16.h5",
    "resnet50": "rcmalli_vggface_tf_notop_resnet50.h5",
    "senet50": "rcmalli_vggface_tf_notop_senet50.h5",
}
PREPROCESSING = {"vgg16": "vggface_v1", "resnet50": "vggface_v2", "senet50": "vggface_v2"}
RESNET50_STAGES = (
    (2, 3, (64, 64, 256)),
    (3, 4, (128, 128, 512)),
    (4, 6, (256, 256, 1024)),
    (5, 3, (512, 512, 2048)),
)


def keras_name(h5_name: str) -> str:
    """The Keras 3 layer name of a keras-vggface layer (``/`` is not allowed in Keras 3)."""
    return h5_name.replace("/", "_")


def weights_url(arch: str) -> str:
    return f"{_RELEASE}/{WEIGHT_FILES[arch]}"


# -- architectures -----------------------------------------------------------------------


def vggface_vgg16_backbone(input_shape) -> keras.Model:
    """VGG16 as trained on VGGFace (Parkhi et al. 2015): conv1_1 ... conv5_3, pool1 ... pool5."""
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    for block, (filters, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for i in range(1, n + 1):
            x = layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=f"conv{block}_{i}"
            )(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)
    return keras.Model(inputs, x, name=BACKBONE)


def _conv_bn(
    x, filters: int, kernel: int, h5_name: str, *, strides: int = 1, eps: float, relu: bool = True
):
    """keras-vggface's conv + BN (+ ReLU), named ``h5_name``, ``h5_name/bn``, ``h5_name/relu`` as in its
    files; BN keeps Keras' default momentum (0.99) that the weights were trained with."""
    name = keras_name(h5_name)
    return conv_bn_act(
        x, filters, kernel, strides, name=name, conv_name=name, padding="same" if kernel > 1 else "valid",
        activation="relu" if relu else None, bn_momentum=0.99, bn_epsilon=eps,
    )


def _se(x, stage: int, block: int):
    """keras-vggface's SE block: 1x1 convs (with bias), compression 16."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"conv{stage}_{block}_se_pool")(x)
    s = layers.Conv2D(channels // 16, 1, activation="relu", name=f"conv{stage}_{block}_1x1_down")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"conv{stage}_{block}_1x1_up")(s)
    return layers.Multiply(name=f"conv{stage}_{block}_se_scale")([x, s])


def _bottleneck(x, filters, stage: int, block: int, *, strides: int, se: bool, eps: float):
    f1, f2, f3 = filters
    p = f"conv{stage}_{block}"
    y = _conv_bn(x, f1, 1, f"{p}_1x1_reduce", strides=strides, eps=eps)
    y = _conv_bn(y, f2, 3, f"{p}_3x3", eps=eps)
    y = _conv_bn(y, f3, 1, f"{p}_1x1_increase", eps=eps, relu=False)
    if se:
        y = _se(y, stage, block)
    shortcut = x
    if block == 1:
        shortcut = _conv_bn(x, f3, 1, f"{p}_1x1_proj", strides=strides, eps=eps, relu=False)
    y = layers.Add(name=f"{p}_add")([y, shortcut])
    return layers.ReLU(name=f"{p}_out")(y)


def vggface_resnet_backbone(input_shape, *, se: bool = False) -> keras.Model:
    """ResNet-50 (or SE-ResNet-50 with ``se``) as trained on VGGFace2 (Cao et al. 2018).

    Bias-free convolutions, stride on the 1x1 reduce conv; SENet50 uses BN epsilon 1e-4.
    """
    eps = 1e-4 if se else 1e-3
    inputs = keras.Input(shape=tuple(input_shape))
    x = _conv_bn(inputs, 64, 7, "conv1/7x7_s2", strides=2, eps=eps)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, blocks, filters in RESNET50_STAGES:
        for block in range(1, blocks + 1):
            strides = 2 if block == 1 and stage > 2 else 1
            x = _bottleneck(x, filters, stage, block, strides=strides, se=se, eps=eps)
    return keras.Model(inputs, x, name=BACKBONE)


def vggface_backbone(arch: str, input_shape) -> keras.Model:
    if arch == "vgg16":
        return vggface_vgg16_backbone(input_shape)
    if arch in ("resnet50", "senet50"):
        return vggface_resnet_backbone(input_shape, se=arch == "senet50")
    raise ValueError(f"no VGGFace backbone {arch!r}; known: {', '.join(WEIGHT_FILES)}")


# -- weights -----------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What ``load_vggface_weights`` did, layer by layer."""

    loaded: list[str] = field(default_factory=list)
    #: File layers with no model layer of that name (e.g. a with-top file's classifier).
    skipped: list[str] = field(default_factory=list)
    #: Layers whose weight count or shapes differ between the file and the model.
    mismatched: list[str] = field(default_factory=list)
    #: Model layers with weights that the file did not provide.
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} layers, skipped {len(self.skipped)}, "
            f"mismatched {len(self.mismatched)}, missing {len(self.missing)}"
        )


def _text(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _attribute(group, name: str) -> list[str]:
    """A list attribute; Keras 2 split long ones into ``name0``, ``name1``... (HDF5 64 kB cap)."""
    if name in group.attrs:
        return _text(group.attrs[name])
    chunks, i = [], 0
    while f"{name}{i}" in group.attrs:
        chunks.extend(_text(group.attrs[f"{name}{i}"]))
        i += 1
    return chunks


def _ordered(layer: keras.layers.Layer, names: list[str], values: list[np.ndarray]):
    """File values in the layer's weight order: by variable name when they match, else as stored."""
    wanted = [w.name for w in layer.trainable_weights + layer.non_trainable_weights]
    by_name = {n.rsplit("/", 1)[-1].split(":")[0]: v for n, v in zip(names, values, strict=True)}
    if sorted(by_name) == sorted(wanted):
        return [by_name[w] for w in wanted]
    return values


def load_vggface_weights(backbone: keras.Model, path: str | Path) -> LoadReport:
    """Copy a keras-vggface HDF5 file into ``backbone`` by layer name.

    Raises ValueError when any backbone layer with weights was not loaded, so a wrong or
    truncated file can never pass silently as "pre-trained".
    """
    report = LoadReport()
    model_layers = {layer.name: layer for layer in backbone.layers if layer.weights}
    with h5py.File(path, "r") as f:
        # A full-model file keeps the weights under "model_weights".
        root = f["model_weights"] if "model_weights" in f else f
        for h5_name in _attribute(root, "layer_names"):
            group = root[h5_name]
            weight_names = _attribute(group, "weight_names")
            if not weight_names:
                continue
            layer = model_layers.get(keras_name(h5_name))
            if layer is None:
                report.skipped.append(h5_name)
                continue
            values = _ordered(layer, weight_names, [np.asarray(group[w]) for w in weight_names])
            targets = layer.trainable_weights + layer.non_trainable_weights
            if len(values) != len(targets) or any(
                tuple(v.shape) != tuple(t.shape) for v, t in zip(values, targets, strict=False)
            ):
                report.mismatched.append(h5_name)
                continue
            for target, value in zip(targets, values, strict=True):
                target.assign(value)
            report.loaded.append(layer.name)
    report.missing = sorted(set(model_layers) - set(report.loaded))
    log.info("VGGFace weights %s: %s", Path(path).name, report.summary())
    if report.missing or not report.loaded:
        raise ValueError(
            f"{Path(path).name} did not fit the backbone: {report.summary()}; "
            f"missing e.g. {report.missing[:3]}, mismatched e.g. {report.mismatched[:3]}"
        )
    return report


def build_vggface_classifier(
    arch: str,
    input_shape,
    num_classes: int,
    *,
    pretrain: str = "vggface",
    pooling: str = "gap",
    weights_dir=None,
    paper_faithful: bool = False,
    name: str,
) -> keras.Model:
    """VGGFace backbone (loaded from the cache when ``pretrain == "vggface"``) + protocol head."""
    backbone = vggface_backbone(arch, input_shape)
    if pretrain == "vggface":
        path = find_weights(WEIGHT_FILES[arch], weights_url(arch), weights_dir)
        load_vggface_weights(backbone, path)
    preprocessing = "rescale" if paper_faithful else PREPROCESSING[arch]
    return classifier_on_backbone(
        backbone, input_shape, num_classes, preprocessing=preprocessing, pooling=pooling, name=name
    )


def senet50(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None, paper_faithful=False):
    """SENet50 (Hu et al. 2018); keras-vggface needed 197 px only for its 7x7 average pool."""
    return build_vggface_classifier(
        "senet50",
        input_shape,
        num_classes,
        pretrain=pretrain,
        pooling=pooling,
        weights_dir=weights_dir,
        paper_faithful=paper_faithful,
        name="senet50",
    )
