"""Pre-trained initialisation without the network: weight files the tests write themselves.

ImageNet files follow Keras' legacy HDF5 layout (loaded by keras.applications in layer
order); VGGFace files follow keras-vggface's (Keras 2: root ``layer_names``, per-layer
``weight_names``), with that project's layer names, and are loaded by name.
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest

from fer_keras.models.keras_apps import APPS, app_backbone
from fer_keras.models.preprocessing import preprocessing_mode
from fer_keras.models.vggface import (
    PREPROCESSING,
    WEIGHT_FILES,
    keras_name,
    load_vggface_weights,
    vggface_backbone,
)
from fer_keras.models.weights import MissingWeightsError
from fer_keras.registry import BACKBONE, build_model, get_spec

FAST_APPS = ("vgg16", "resnet50", "mobilenet_v2", "efficientnet_v2_b0")


def write_keras2_h5(path, layers: list[tuple[str, list[tuple[str, np.ndarray]]]]) -> None:
    """Write weights the way Keras 2's ``save_weights`` did (what both sources ship)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name, weights in layers:
            group = f.require_group(name)  # "conv1/7x7_s2/bn" nests under "conv1/7x7_s2"
            group.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=value)


def random_like(variables, rng) -> list[np.ndarray]:
    return [rng.normal(0.5, 0.1, size=tuple(v.shape)).astype("float32") for v in variables]


def legacy_weights(layer) -> list:
    return layer.trainable_weights + layer.non_trainable_weights


# -- ImageNet --------------------------------------------------------------------------------


def _imagenet_cases():
    for key in APPS:
        yield key if key in FAST_APPS else pytest.param(key, marks=pytest.mark.slow)


@pytest.mark.parametrize("key", list(_imagenet_cases()))
def test_imagenet_weights_load_from_the_cache(key, tmp_path, no_downloads):
    res = min(get_spec(key).test_resolutions)
    # Fresh name counters before each build: unnamed layers (Xception's residual BNs) are
    # named by a session counter, and the check below compares names.
    keras.backend.clear_session()
    source = app_backbone(key, (res, res, 3))
    rng = np.random.default_rng(0)
    layers, expected = [], {}
    for layer in source.layers:
        if not layer.weights:
            continue
        values = random_like(legacy_weights(layer), rng)
        names = [f"{layer.name}/{w.name}:0" for w in legacy_weights(layer)]
        layers.append((layer.name, list(zip(names, values, strict=True))))
        expected[layer.name] = values
    write_keras2_h5(tmp_path / APPS[key].weights_file, layers)
    keras.backend.clear_session()

    model = build_model(key, res, pretrain="imagenet", weights_dir=tmp_path)
    backbone = model.get_layer(BACKBONE)
    loaded = [layer for layer in backbone.layers if layer.weights]
    assert [layer.name for layer in loaded] == list(expected)
    for layer in loaded:
        for got, want in zip(legacy_weights(layer), expected[layer.name], strict=True):
            np.testing.assert_array_equal(np.asarray(got), want)
    assert preprocessing_mode(model) == APPS[key].preprocessing
    faithful = build_model(key, res, pretrain="imagenet", weights_dir=tmp_path, paper_faithful=True)
    assert preprocessing_mode(faithful) == "rescale"


@pytest.mark.parametrize("key", list(APPS))
def test_missing_imagenet_weights_name_the_file_and_url(key, tmp_path):
    res = min(get_spec(key).test_resolutions)
    with pytest.raises(MissingWeightsError) as err:
        build_model(key, res, pretrain="imagenet", weights_dir=tmp_path)
    message = str(err.value)
    assert APPS[key].weights_file in message
    assert APPS[key].url in message and APPS[key].url.startswith("https://storage.googleapis.com/")


class DownloadTried(BaseException):
    """Raised by the download guard (a BaseException, so no ``except Exception`` swallows it)."""


@pytest.fixture
def no_downloads(monkeypatch):
    """Every download keras.applications could start fails the test: it calls
    ``keras.src.utils.file_utils.get_file``, not the public ``keras.utils.get_file`` alias."""
    from keras.src.utils import file_utils

    def refuse(*args, **kwargs):
        raise DownloadTried(f"download tried: {args} {kwargs}")

    monkeypatch.setattr(file_utils, "get_file", refuse)
    monkeypatch.setattr(keras.utils, "get_file", refuse)


def test_the_download_guard_is_on_the_path_keras_applications_download_through(no_downloads):
    with pytest.raises(DownloadTried):
        keras.applications.MobileNet(include_top=False, weights="imagenet", input_shape=(32, 32, 3))


def test_imagenet_never_downloads(no_downloads, tmp_path):
    """A missing file is an error, not a download."""
    with pytest.raises(MissingWeightsError):
        build_model("mobilenet", 32, pretrain="imagenet", weights_dir=tmp_path)


# -- VGGFace ---------------------------------------------------------------------------------


def keras_vggface_layer_names(arch: str) -> list[str]:
    """The weight-carrying layers of keras-vggface's no-top models, named as that project does."""
    if arch == "vgg16":
        return [
            f"conv{b}_{i}"
            for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
            for i in range(1, n + 1)
        ]
    names = ["conv1/7x7_s2", "conv1/7x7_s2/bn"]
    for stage, blocks in ((2, 3), (3, 4), (4, 6), (5, 3)):
        for block in range(1, blocks + 1):
            p = f"conv{stage}_{block}"
            for part in ("1x1_reduce", "3x3", "1x1_increase"):
                names += [f"{p}_{part}", f"{p}_{part}/bn"]
            if arch == "senet50":
                names += [f"{p}_1x1_down", f"{p}_1x1_up"]
            if block == 1:
                names += [f"{p}_1x1_proj", f"{p}_1x1_proj/bn"]
    return names


# Shapes read off keras-vggface's models.py, checked independently of our builder.
KNOWN_SHAPES = {
    "vgg16": {"conv1_1": [(3, 3, 3, 64), (64,)], "conv5_3": [(3, 3, 512, 512), (512,)]},
    "resnet50": {
        "conv1/7x7_s2": [(7, 7, 3, 64)],
        "conv1/7x7_s2/bn": [(64,)] * 4,
        "conv3_1_1x1_proj": [(1, 1, 256, 512)],
        "conv5_3_1x1_increase": [(1, 1, 512, 2048)],
    },
    "senet50": {
        "conv2_1_1x1_down": [(1, 1, 256, 16), (16,)],
        "conv5_1_1x1_up": [(1, 1, 128, 2048), (2048,)],
        "conv4_6_3x3": [(3, 3, 256, 256)],
    },
}


def vggface_file(arch: str, path, rng, *, extra_top: bool = False, break_layer: str | None = None):
    """A keras-vggface-style file for ``arch``; returns {keras layer name: values}."""
    backbone = vggface_backbone(arch, (32, 32, 3))
    layers, expected = [("input_1", [])], {}
    for h5_name in keras_vggface_layer_names(arch):
        layer = backbone.get_layer(keras_name(h5_name))
        variables = legacy_weights(layer)
        values = random_like(variables, rng)
        if h5_name == break_layer:
            values[0] = values[0][..., :-1]
        layers.append(
            (
                h5_name,
                [(f"{h5_name}/{v.name}:0", x) for v, x in zip(variables, values, strict=True)],
            )
        )
        layers.append((f"activation_{len(layers)}", []))  # weightless layers are listed too
        expected[layer.name] = values
    if extra_top:
        layers.append(("classifier", [("classifier/kernel:0", np.zeros((2048, 3), "float32"))]))
    write_keras2_h5(path, layers)
    return expected


@pytest.mark.parametrize("arch", list(WEIGHT_FILES))
def test_vggface_layer_names_and_shapes_match_keras_vggface(arch):
    backbone = vggface_backbone(arch, (32, 32, 3))
    weighted = {layer.name for layer in backbone.layers if layer.weights}
    assert weighted == {keras_name(n) for n in keras_vggface_layer_names(arch)}
    for h5_name, shapes in KNOWN_SHAPES[arch].items():
        layer = backbone.get_layer(keras_name(h5_name))
        assert [tuple(w.shape) for w in legacy_weights(layer)] == shapes, h5_name


@pytest.mark.parametrize("arch", list(WEIGHT_FILES))
def test_vggface_weights_load_by_name(arch, tmp_path):
    rng = np.random.default_rng(1)
    expected = vggface_file(arch, tmp_path / WEIGHT_FILES[arch], rng, extra_top=True)

    report = load_vggface_weights(
        vggface_backbone(arch, (32, 32, 3)), tmp_path / WEIGHT_FILES[arch]
    )
    assert len(report.loaded) == len(expected)
    assert report.skipped == ["classifier"] and not report.mismatched and not report.missing

    model = build_model(arch, 32, pretrain="vggface", weights_dir=tmp_path)
    backbone = model.get_layer(BACKBONE)
    for name, values in expected.items():
        for got, want in zip(legacy_weights(backbone.get_layer(name)), values, strict=True):
            np.testing.assert_array_equal(np.asarray(got), want)
    assert preprocessing_mode(model) == PREPROCESSING[arch]
    faithful = build_model(arch, 32, pretrain="vggface", weights_dir=tmp_path, paper_faithful=True)
    assert preprocessing_mode(faithful) == "rescale"


def test_vggface_loader_refuses_a_file_that_does_not_fit(tmp_path):
    path = tmp_path / WEIGHT_FILES["resnet50"]
    vggface_file("resnet50", path, np.random.default_rng(2), break_layer="conv4_2_3x3")
    with pytest.raises(ValueError, match="mismatched 1"):
        load_vggface_weights(vggface_backbone("resnet50", (32, 32, 3)), path)
    # The wrong architecture loads nothing and says so.
    with pytest.raises(ValueError, match="loaded 0 layers"):
        load_vggface_weights(vggface_backbone("vgg16", (32, 32, 3)), path)


@pytest.mark.parametrize("arch", list(WEIGHT_FILES))
def test_missing_vggface_weights_name_the_file_and_url(arch, tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        build_model(arch, 32, pretrain="vggface", weights_dir=tmp_path)
    message = str(err.value)
    assert WEIGHT_FILES[arch] in message
    assert (
        f"github.com/rcmalli/keras-vggface/releases/download/v2.0/{WEIGHT_FILES[arch]}" in message
    )
