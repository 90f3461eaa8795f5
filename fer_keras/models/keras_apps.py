"""keras.applications backbones under the protocol head (PROTOCOL.md, 'Models', 'Initialisation').

Each family keeps the input normalisation its ImageNet weights were trained with, as a
``Preprocess`` layer inside the model; ``paper_faithful=True`` swaps it for the paper's
1/255 scaling. Scratch variants use the same normalisation so that scratch and
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
from fer_keras.models.weights import find_weights
from fer_keras.registry import BACKBONE, register_model

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


def _simple(key: str, **meta: Any) -> None:
    """Register ``key`` as a plain keras.applications model (scratch or ImageNet)."""

    def builder(
        input_shape,
        num_classes,
        *,
        pretrain="scratch",
        pooling="gap",
        weights_dir=None,
        paper_faithful=False,
    ):
        return build_app_classifier(
            key,
            input_shape,
            num_classes,
            pretrain=pretrain,
            pooling=pooling,
            weights_dir=weights_dir,
            paper_faithful=paper_faithful,
        )

    builder.__name__ = key
    builder.__doc__ = f"{meta['paper_name']} (keras.applications) under the protocol head."
    register_model(key, pretrains=("scratch", "imagenet"), **meta)(builder)


_simple(
    "vgg19",
    family="vgg",
    paper_name="VGG19",
    description="VGG-19 (keras.applications), caffe normalisation, protocol head",
    min_resolution=32,
    params={48: 20_223_303, 224: 20_223_303},
    test_resolutions=(32,),
)
_simple(
    "mobilenet",
    family="mobilenet",
    paper_name="MobileNet",
    description="MobileNet v1 alpha 1.0 (keras.applications), [-1,1] input, protocol head",
    min_resolution=32,
    params={48: 3_558_855, 224: 3_558_855},
    test_resolutions=(32,),
)
_simple(
    "mobilenet_v2",
    family="mobilenet",
    paper_name="MobileNetV2",
    description="MobileNetV2 alpha 1.0 (keras.applications), [-1,1] input, protocol head",
    min_resolution=32,
    params={48: 2_653_511, 224: 2_653_511},
    test_resolutions=(32,),
)
_simple(
    "efficientnet_v2_b0",
    family="efficientnet",
    paper_name="EfficientNetV2-B0",
    description="EfficientNetV2-B0 with its built-in normalisation, protocol head",
    min_resolution=32,
    params={48: 6_314_839, 224: 6_314_839},
    test_resolutions=(32,),
)
_simple(
    "nasnet_mobile",
    family="nasnet",
    paper_name="NASNetMobile",
    description="NASNet-A Mobile (keras.applications), [-1,1] input, protocol head",
    min_resolution=32,
    params={48: 4_607_899, 224: 4_607_899},
    test_resolutions=(32,),
)
_simple(
    "densenet121",
    family="densenet",
    paper_name="DenseNet121",
    description="DenseNet-121 (keras.applications), torch normalisation, protocol head",
    min_resolution=32,
    params={48: 7_367_495, 224: 7_367_495},
    test_resolutions=(32,),
)
_simple(
    "inception_v3",
    family="inception",
    paper_name="InceptionV3",
    description="Inception v3 (keras.applications; needs >= 75 px), [-1,1] input, protocol head",
    min_resolution=75,
    params={224: 22_394_919},
    test_resolutions=(75,),
)
_simple(
    "xception",
    family="xception",
    paper_name="Xception",
    description="Xception (keras.applications; needs >= 71 px), [-1,1] input, protocol head",
    min_resolution=71,
    params={224: 21_453_615},
    test_resolutions=(71,),
)


@register_model(
    family="vgg",
    paper_name="VGG16",
    description="VGG-16: keras apps (scratch, ImageNet) or VGGFace v1 backbone, protocol head",
    min_resolution=32,
    pretrains=("scratch", "imagenet", "vggface"),
    params={48: 14_913_607, 224: 14_913_607},
    test_resolutions=(32,),
)
def vgg16(
    input_shape,
    num_classes,
    *,
    pretrain="scratch",
    pooling="gap",
    weights_dir=None,
    paper_faithful=False,
):
    """VGG16; ``pretrain="vggface"`` swaps in the VGGFace (v1) backbone with its layer names."""
    if pretrain == "vggface":
        from fer_keras.models.vggface import build_vggface_classifier

        return build_vggface_classifier(
            "vgg16",
            input_shape,
            num_classes,
            pooling=pooling,
            weights_dir=weights_dir,
            paper_faithful=paper_faithful,
            name="vgg16",
        )
    return build_app_classifier(
        "vgg16",
        input_shape,
        num_classes,
        pretrain=pretrain,
        pooling=pooling,
        weights_dir=weights_dir,
        paper_faithful=paper_faithful,
    )


@register_model(
    family="resnet",
    paper_name="ResNet50",
    description="ResNet-50: keras apps (scratch, ImageNet) or VGGFace2 backbone, protocol head",
    min_resolution=32,
    pretrains=("scratch", "imagenet", "vggface"),
    params={48: 24_179_847, 224: 24_179_847},
    test_resolutions=(32,),
)
def resnet50(
    input_shape,
    num_classes,
    *,
    pretrain="scratch",
    pooling="gap",
    weights_dir=None,
    paper_faithful=False,
):
    """ResNet50; ``pretrain="vggface"`` swaps in the VGGFace2 ResNet-50.

    Its convolutions have no bias, so that variant has 24,153,287 parameters, not the
    24,179,847 of the keras.applications layout counted in ``params``.
    """
    if pretrain == "vggface":
        from fer_keras.models.vggface import build_vggface_classifier

        return build_vggface_classifier(
            "resnet50",
            input_shape,
            num_classes,
            pooling=pooling,
            weights_dir=weights_dir,
            paper_faithful=paper_faithful,
            name="resnet50",
        )
    return build_app_classifier(
        "resnet50",
        input_shape,
        num_classes,
        pretrain=pretrain,
        pooling=pooling,
        weights_dir=weights_dir,
        paper_faithful=paper_faithful,
    )
