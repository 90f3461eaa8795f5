"""Registry-wide model tests: every registered model is checked without new test code.

One model per module-scoped fixture, built once at its smallest test resolution (big models
with the small options of ``conftest.TINY_OPTIONS``) and shared by the forward, save/load,
freezing and training checks (pytest groups the tests by model, so only one model is alive
at a time). ``test_parameter_count`` builds every model at full size.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_OPTIONS

from fer_keras.models.features import (
    branch_outputs_model,
    feature_extractor,
    feature_maps_layer,
    set_features_trainable,
)
from fer_keras.models.preprocessing import LAYER_PREFIX, MODES, Preprocess, normalise, preprocessing_mode
from fer_keras.registry import BACKBONE, FEATURES, PREDICTIONS, build_model, get_spec, list_models

MODELS = list_models()
NUM_CLASSES = 7


def smallest_resolution(name: str) -> int:
    spec = get_spec(name)
    return min(spec.test_resolutions or (spec.min_resolution,))


def batch(res: int, n: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, res, res, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(n) % NUM_CLASSES, NUM_CLASSES)
    return x, y


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    name = request.param
    res = smallest_resolution(name)
    keras.utils.set_random_seed(0)
    yield name, res, build_model(name, res, NUM_CLASSES, **TINY_OPTIONS.get(name, {}))
    keras.backend.clear_session()


def test_registry_has_the_zoo():
    expected = {
        "vgg16",
        "vgg19",
        "vggnet",
        "repvgg",
        "mobilenet",
        "mobilenet_v2",
        "efficientnet_v2_b0",
        "resnet18",
        "resnet50",
        "nasnet_mobile",
        "densenet121",
        "googlenet",
        "inception_v3",
        "xception",
        "senet50",
        "lenet5",
        "alexnet",
        "zfnet",
        "sequential_simple",
        "sequential_3conv",
        "sequential_4conv",
        "ensemble",
        "modular",
        "smmb",
    }
    assert expected <= set(MODELS)


def test_spec_metadata_is_consistent():
    for name in MODELS:
        spec = get_spec(name)
        assert spec.test_resolutions, name
        assert all(spec.supports(r) for r in spec.test_resolutions), name
        assert set(spec.params) == {r for r in (48, 224) if spec.supports(r)}, name
        assert spec.default_pooling in ("gap", "flatten"), name


def test_builders_share_one_signature():
    for name in MODELS:
        spec = get_spec(name)
        params = inspect.signature(spec.load_builder()).parameters
        assert list(params)[:2] == ["input_shape", "num_classes"], name
        for kw in ("pretrain", "pooling", "weights_dir"):
            assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY, (name, kw)
        assert params["pretrain"].default == "scratch", name
        assert params["pooling"].default == spec.default_pooling, name
        # registry.build_model passes paper_faithful exactly when a pre-trained init is asked for.
        assert ("paper_faithful" in params) == (spec.pretrains != ("scratch",)), name


def test_forward_shape_softmax_and_layout(built):
    name, res, model = built
    x, _ = batch(res)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (2, NUM_CLASSES)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Keras' own Rescaling normalises (after a BGR flip op where the weights want it), so the
    # saved file needs no fer_keras class at its input.
    first = model.layers[1]
    assert isinstance(first, keras.layers.Rescaling), f"{name}: first layer must normalise input"
    assert first.name == LAYER_PREFIX + preprocessing_mode(model), name
    assert model.layers[-1].name == PREDICTIONS
    assert model.name == name


def test_save_load_roundtrip(built, tmp_path):
    name, res, model = built
    x, _ = batch(res)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(
        np.asarray(model(x, training=False)), np.asarray(loaded(x, training=False)), atol=1e-6
    )
    custom = custom_classes(path)
    assert (not custom) == get_spec(name).portable, f"{name}: custom classes {custom} vs the registry's portable"


def custom_classes(path) -> set[str]:
    """Classes a saved .keras file names from outside Keras: what plain load_model cannot find."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            module = node.get("module", "keras")
            if "class_name" in node and not (module or "").startswith("keras"):
                found.add(node.get("registered_name") or node["class_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with zipfile.ZipFile(path) as z:
        walk(json.loads(z.read("config.json")))
    return found


@pytest.mark.parametrize("mode", MODES)
def test_normalisation_matches_the_reference_layer(mode):
    """Keras' Rescaling (and flip) computes what the original custom layer computed."""
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    inputs = keras.Input((4, 4, 3))
    got = np.asarray(keras.Model(inputs, normalise(inputs, mode))(x))
    want = np.asarray(Preprocess(mode)(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


_LOAD_WITHOUT_FER_KERAS = """
import sys, keras, numpy as np
for stem in sys.argv[1:]:
    model = keras.models.load_model(stem + '.keras')
    np.save(stem + '_loaded.npy', np.asarray(model(np.load(stem + '_x.npy'), training=False)))
assert not [m for m in sys.modules if m.split('.')[0] in ('fer_keras', 'data_prep')]
"""


def test_saved_models_load_without_fer_keras(tmp_path):
    """A registered model and one model per normalisation mode load in a process that never
    imports fer_keras (the registry-wide check above covers what each model's file names)."""
    models = {"sequential_simple": build_model("sequential_simple", 32, NUM_CLASSES)}
    for mode in MODES:
        inputs = keras.Input((8, 8, 3), name="image")
        models[mode] = keras.Model(inputs, normalise(inputs, mode))
    stems, expected = [], {}
    for key, model in models.items():
        stem = str(tmp_path / key)
        x, _ = batch(model.input_shape[1])
        np.save(stem + "_x.npy", x)
        model.save(stem + ".keras")
        stems.append(stem)
        expected[stem] = np.asarray(model(x, training=False))
    # cwd outside the repository, no PYTHONPATH: fer_keras cannot be imported by accident.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_FER_KERAS, *stems], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stem in stems:
        np.testing.assert_allclose(np.load(stem + "_loaded.npy"), expected[stem], atol=1e-6)


def test_freezing_touches_exactly_the_backbone(built):
    name, _, model = built
    if BACKBONE not in {layer.name for layer in model.layers}:
        # Nothing to freeze, so nothing pre-trained either: the two-phase fit must not be offered.
        assert get_spec(name).pretrains == ("scratch",), f"{name}: pre-trained without a backbone"
        return
    backbone = model.get_layer(BACKBONE)
    before = {id(w) for w in model.trainable_weights}
    backbone_ids = {id(w) for w in backbone.trainable_weights}
    assert backbone_ids and backbone_ids < before
    backbone.trainable = False
    assert {id(w) for w in model.trainable_weights} == before - backbone_ids
    backbone.trainable = True
    assert {id(w) for w in model.trainable_weights} == before


def _producers(layer) -> set[str]:
    """Names of the layers whose outputs ``layer`` takes as inputs in its graph."""
    return {t._keras_history.operation.name for node in layer._inbound_nodes for t in node.input_tensors}


def test_feature_extractor_feeds_the_head(built):
    """One way for every family: ``feature_extractor`` maps images to what the head consumes, the
    head reads nothing else, freezing it leaves only the head trainable, and Grad-CAM's layer is spatial."""
    name, res, model = built
    extractor = feature_extractor(model)
    x, _ = batch(res)
    feats = np.asarray(extractor(x, training=False))
    assert feats.shape[0] == 2 and feats.ndim == 2 and np.all(np.isfinite(feats)), (name, feats.shape)
    ours = {id(layer) for layer in extractor.layers}
    head = [layer for layer in model.layers if id(layer) not in ours]
    inputs = {FEATURES} | {layer.name for layer in model.layers if layer.name.endswith(f"_{FEATURES}")}
    allowed = inputs | {layer.name for layer in head}
    for layer in head:
        assert _producers(layer) <= allowed, f"{name}: head layer {layer.name} reads {_producers(layer) - allowed}"
    assert model.layers[-1] in head
    # Freezing the extractor leaves exactly the head's weights trainable (the two-phase fit).
    before = {id(w) for w in model.trainable_weights}
    frozen = {id(w) for w in extractor.trainable_weights}
    assert frozen and frozen < before, name
    # Each call makes a new wrapper (as the two phases of a fit do): unfreezing must reach the layers.
    set_features_trainable(model, False)
    try:
        assert {id(w) for w in model.trainable_weights} == before - frozen
    finally:
        set_features_trainable(model, True)
    assert {id(w) for w in model.trainable_weights} == before, f"{name}: unfreezing left weights frozen"
    # Fine-tuning a trained model on new classes is a new head on the same extractor.
    new = keras.Model(extractor.input, keras.layers.Dense(3, activation="softmax")(extractor.output))
    assert np.asarray(new(x, training=False)).shape == (2, 3)
    cam_layer = feature_maps_layer(model)
    assert len(cam_layer.output.shape) == 4, f"{name}: Grad-CAM layer {cam_layer.name} is not spatial"


def test_branch_outputs(built):
    name, res, model = built
    if not any(layer.name.startswith("branch") for layer in model.layers):
        with pytest.raises(ValueError, match="no branchN"):
            branch_outputs_model(model)
        return
    x, _ = batch(res)
    outs = branch_outputs_model(model)(x, training=False)
    assert len(outs) >= 2
    preds = [np.asarray(v) for k, v in sorted(outs.items()) if k.endswith("_predictions")]
    if preds:  # averaged softmax members: their mean is the model's output
        np.testing.assert_allclose(
            np.mean(preds, axis=0), np.asarray(model(x, training=False)), atol=1e-5
        )


def _loss(model, x, y):
    # Inference mode: Dropout off and BatchNorm on its moving statistics, so the loss is a
    # deterministic function of the weights and every trainable weight (BatchNorm's gamma and
    # beta included) takes part in it.
    return keras.ops.mean(keras.losses.categorical_crossentropy(y, model(x, training=False)))


def gradient_problems(model, x, y) -> list[str]:
    """What is wrong with the model's backward pass, checked so no CPU's rounding decides it.

    Every trainable weight must get a finite, non-zero gradient, and a step along the
    negative gradient must lower the loss by a real share of what the gradient predicts.
    The step is sized so the predicted fall is 1e-3 of the loss (far above float32 noise)
    and halved a few times before giving up, so curvature cannot make a correct gradient
    fail; a missing, wrong-signed or garbage gradient does.
    """
    weights = model.trainable_weights
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y)
    grads = tape.gradient(loss, weights)
    problems = [
        f"{w.path}: no gradient" if g is None
        else f"{w.path}: non-finite gradient" if not np.all(np.isfinite(g))
        else f"{w.path}: zero gradient"
        for w, g in zip(weights, grads, strict=True)
        if g is None or not np.all(np.isfinite(g)) or not np.any(np.asarray(g))
    ]
    if problems:
        return problems
    loss = float(loss)
    squared_norm = sum(float(np.sum(np.square(np.asarray(g, dtype="float64")))) for g in grads)
    originals = [np.asarray(w) for w in weights]
    step = 1e-3 * loss / squared_norm
    try:
        for _ in range(6):
            for w, w0, g in zip(weights, originals, grads, strict=True):
                w.assign(w0 - step * np.asarray(g))
            fall = loss - float(_loss(model, x, y))
            if fall > 0.1 * step * squared_norm:
                return []
            step /= 4
    finally:
        for w, w0 in zip(weights, originals, strict=True):
            w.assign(w0)
    return [f"a step along the negative gradient does not lower the loss ({loss:.6f})"]


def test_every_weight_learns(built):
    name, res, model = built
    x, y = batch(res, n=4)
    assert gradient_problems(model, x, y) == [], name


class _CutGradient(keras.layers.Layer):
    """Identity forward, broken backward: what the gradient check must catch."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        @tf.custom_gradient
        def identity(t):
            def grad(upstream):
                return tf.zeros_like(upstream) if self.mode == "zero" else -upstream
            return tf.identity(t), grad

        return identity(inputs)


@pytest.mark.parametrize("mode", ["zero", "reversed"])
def test_gradient_check_catches_a_broken_backward_pass(mode):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(NUM_CLASSES)(h)
    # At the logits a broken backward pass reaches every weight below it.
    outputs = keras.layers.Softmax()(_CutGradient(mode)(h))
    model = keras.Model(inputs, outputs)
    x, y = batch(8, n=4)
    problems = gradient_problems(model, x / 255.0, y)
    assert problems
    if mode == "zero":
        assert len(problems) == len(model.trainable_weights), problems
    else:
        assert problems == [problems[0]] and "does not lower the loss" in problems[0]


def _param_cases():
    """(name, res) pairs: every model at full size, its 48 px count in the fast run. A 224 count
    equal to the 48 one (GAP heads) is re-checked only in the slow run, since the fast 48 build
    already exercises the same layers; so is the 224 count of a model over 100M parameters (the
    masking network: its 224 px stem is resnet_stem, counted at 224 by resnet18)."""
    for name in MODELS:
        params = get_spec(name).params
        for res in sorted(params):
            same = res == 224 and params.get(48) == params[224]
            huge = res == 224 and params.get(48, 0) > 100_000_000
            yield pytest.param(name, res, marks=pytest.mark.slow) if same or huge else (name, res)


@pytest.mark.parametrize("name,res", list(_param_cases()))
def test_parameter_count(name, res):
    model = build_model(name, res, NUM_CLASSES)
    assert model.count_params() == get_spec(name).params[res]
    keras.backend.clear_session()


@pytest.mark.parametrize("name", MODELS)
def test_invalid_resolution_names_valid_ones(name):
    spec = get_spec(name)
    bad = [spec.min_resolution - 1] + ([spec.max_resolution + 1] if spec.max_resolution else [])
    for res in bad:
        with pytest.raises(ValueError, match=f"works at {spec.resolution_text()}"):
            build_model(name, res)


@pytest.mark.parametrize(
    "typo,closest",
    [
        ("resnet5", "resnet50"),
        ("VGG16", "vgg16"),
        ("mobilenetv2", "mobilenet_v2"),
        ("senet", "senet50"),
    ],
)
def test_unknown_name_suggests_the_closest(typo, closest):
    with pytest.raises(ValueError, match=f"Did you mean.*'{closest}'"):
        build_model(typo, 48)


def test_unsupported_initialisation_fails_early():
    with pytest.raises(ValueError, match="initialisation"):
        build_model("lenet5", 48, pretrain="imagenet")
    with pytest.raises(ValueError, match="initialisation"):
        build_model("mobilenet", 48, pretrain="vggface")


def test_feature_maps_layer_of_a_model_saved_before_the_features_layer():
    """Runs saved before the ``features`` convention still get Grad-CAM: the whole model is searched."""
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="last_conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, activation="softmax", name=PREDICTIONS)(h))
    assert feature_maps_layer(model).name == "last_conv"
    with pytest.raises(ValueError, match="no 'features' layer"):
        feature_extractor(model)


def test_catalog_states_the_stem_threshold_the_builders_use():
    """The catalog's text cannot import TensorFlow, so it repeats SMALL_INPUT; this keeps them equal."""
    from fer_keras.models._blocks import SMALL_INPUT

    switching = [d for d in (get_spec(n).description for n in MODELS) if " below " in d and " px" in d]
    assert len(switching) >= 4 and all(f"below {SMALL_INPUT} px" in d for d in switching), switching
