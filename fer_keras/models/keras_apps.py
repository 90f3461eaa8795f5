"""keras.applications backbones under the protocol head (PROTOCOL.md, 'Models', 'Initialisation').

Each family keeps the input normalisation its ImageNet weights were trained with, as
Keras layers inside the model (``preprocessing.normalise``); ``paper_faithful=True``
swaps it for the paper's 1/255 scaling. Scratch variants use the same normalisation so that scratch and
pre-trained runs differ only in their initial weights. ImageNet weights are looked up
offline (``find_weights``); ``weights="imagenet"`` is never passed because it downloads.
EfficientNetV2 normalises inside the network (``include_preprocessing``), so its layer is
a no-op; with ``paper_faithful`` it sees 1/255 input that it rescales again, which is what
the paper's notebooks fed it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from fer_keras.models._head import classifier_on_backbone
from fer_keras.models.vggface import build_vggface_classifier
from fer_keras.models.weights import find_weights
from fer_keras.registry import BACKBONE

_GCS = "https://storage.googleapis.com/tensorflow/keras-applications"


@dataclass(frozen=True)
class KerasApp:
    """How to build one keras.applications backbone and where its no-top weights live."""

    constructor: Callable[..., keras.Model]
    weights_file: str
    url: str
    preprocessing: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _app(fn: str, weights_file: str, folder: str, preprocessing: str, **kwargs: Any) -> KerasApp:
    return KerasApp(
        getattr(keras.applications, fn),
        weights_file,
        f"{_GCS}/{folder}/{weights_file}",
        preprocessing,
        kwargs,
    )


APPS: dict[str, KerasApp] = {
    "vgg16": _app("VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg16", "caffe"),
    "vgg19": _app("VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg19", "caffe"),
    "resnet50": _app(
        "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "resnet", "caffe"
    ),
    # MobileNet ships one file per training resolution; the convolution weights fit any
    # input size, so the 224 px file serves every resolution (as Keras itself does).
    "mobilenet": _app("MobileNet", "mobilenet_1_0_224_tf_no_top.h5", "mobilenet", "tf"),
    "mobilenet_v2": _app(
        "MobileNetV2",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        "mobilenet_v2",
        "tf",
    ),
    "nasnet_mobile": _app("NASNetMobile", "nasnet_mobile_no_top.h5", "nasnet", "tf"),
    "densenet121": _app(
        "DenseNet121",
        "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "densenet",
        "torch",
    ),
    "inception_v3": _app(
        "InceptionV3",
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "inception_v3",
        "tf",
    ),
    "xception": _app(
        "Xception", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5", "xception", "tf"
    ),
    # EfficientNetV2 normalises inside the network (include_preprocessing), on 0-255 input.
    "efficientnet_v2_b0": _app(
        "EfficientNetV2B0",
        "efficientnetv2-b0_notop.h5",
        "efficientnet_v2",
        "none",
        include_preprocessing=True,
    ),
}


def imagenet_weights_path(key: str, weights_dir: Path | None = None) -> Path:
    """The cached no-top ImageNet file of ``key``; MissingWeightsError names file and URL."""
    app = APPS[key]
    return find_weights(app.weights_file, app.url, weights_dir)


def app_backbone(
    key: str, input_shape, *, pretrain: str = "scratch", weights_dir=None
) -> keras.Model:
    """The feature-map backbone of ``key`` named ``backbone``, ImageNet-initialised on request."""
    app = APPS[key]
    weights = str(imagenet_weights_path(key, weights_dir)) if pretrain == "imagenet" else None
    net = app.constructor(
        include_top=False, weights=weights, input_shape=tuple(input_shape), **app.kwargs
    )
    # Some constructors reject a custom name (EfficientNetV2 keys its block table on it),
    # so rename by wrapping: the layers and their weights are shared, not copied.
    return keras.Model(net.input, net.output, name=BACKBONE)


def build_app_classifier(
    key: str,
    input_shape,
    num_classes: int,
    *,
    pretrain: str = "scratch",
    pooling: str = "gap",
    weights_dir=None,
    paper_faithful: bool = False,
) -> keras.Model:
    if pretrain not in ("scratch", "imagenet"):
        raise ValueError(
            f"{key}: keras.applications backbones take scratch or imagenet, got {pretrain!r}"
        )
    backbone = app_backbone(key, input_shape, pretrain=pretrain, weights_dir=weights_dir)
    preprocessing = "rescale" if paper_faithful else APPS[key].preprocessing
    return classifier_on_backbone(
        backbone, input_shape, num_classes, preprocessing=preprocessing, pooling=pooling, name=key
    )


def _app_builder(key: str) -> Callable[..., keras.Model]:
    """The registry builder of ``key``; VGG16 and ResNet50 also take VGGFace weights."""
    vggface = key in ("vgg16", "resnet50")

    def builder(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None, paper_faithful=False):
        if pretrain == "vggface":
            return build_vggface_classifier(
                key, input_shape, num_classes, pooling=pooling, weights_dir=weights_dir,
                paper_faithful=paper_faithful, name=key,
            )
        return build_app_classifier(
            key, input_shape, num_classes, pretrain=pretrain, pooling=pooling, weights_dir=weights_dir,
            paper_faithful=paper_faithful,
        )

    builder.__name__ = key
    builder.__doc__ = f"{key} (keras.applications{', or the VGGFace layout' if vggface else ''}), protocol head."
    return builder


# The registry's builders (fer_keras.models.catalog names them "fer_keras.models.keras_apps:<key>").
vgg16 = _app_builder("vgg16")
vgg19 = _app_builder("vgg19")
resnet50 = _app_builder("resnet50")
mobilenet = _app_builder("mobilenet")
mobilenet_v2 = _app_builder("mobilenet_v2")
efficientnet_v2_b0 = _app_builder("efficientnet_v2_b0")
nasnet_mobile = _app_builder("nasnet_mobile")
densenet121 = _app_builder("densenet121")
inception_v3 = _app_builder("inception_v3")
xception = _app_builder("xception")
