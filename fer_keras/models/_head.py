"""The classification heads the protocol puts on top of a backbone."""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models.preprocessing import normalise
from fer_keras.registry import BACKBONE, FEATURES, PREDICTIONS


def image_input(input_shape, preprocessing: str = "rescale"):
    """The model's ``image`` input (0-255 RGB) and its normalised tensor: preprocessing lives in the graph."""
    inputs = keras.Input(shape=input_shape, name="image")
    return inputs, normalise(inputs, preprocessing)


def features(x, name: str = FEATURES):
    """Mark ``x`` as what the head consumes (a no-op layer named ``features``): every builder calls
    this where its feature extractor ends, so no caller needs a per-model layer name."""
    return layers.Identity(name=name)(x)


def branch_features(x, branch: str):
    """:func:`features` of one branch (``branchN``) in a model whose branches end in their own classifier."""
    return features(x, f"{branch}_{FEATURES}")


def softmax_output(x, num_classes: int):
    """The class probabilities every model ends in, under the name the evaluators look up; float32 even
    under a mixed-precision policy, so the loss and the probabilities keep full precision."""
    return layers.Dense(num_classes, activation="softmax", name=PREDICTIONS, dtype="float32")(x)


def fc_head(x, units: tuple[int, ...], dropout: float, num_classes: int):
    """Dense ReLU layers ``fc1``.. (each followed by Dropout when ``dropout``), then the softmax."""
    for i, n in enumerate(units, 1):
        x = layers.Dense(n, activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return softmax_output(x, num_classes)


def check_option(option: str, value, choices: tuple) -> None:
    """A model option outside its choices fails at build time, naming the option and the choices."""
    if value not in choices:
        raise ValueError(f"{option} must be one of {choices}, got {value!r}")


def pool(x, pooling: str):
    """GlobalAveragePooling2D, or Flatten for the paper's rows marked '*'."""
    if pooling == "gap":
        return layers.GlobalAveragePooling2D(name="pool")(x)
    if pooling == "flatten":
        return layers.Flatten(name="pool")(x)
    raise ValueError(f"pooling must be 'gap' or 'flatten', got {pooling!r}")


def protocol_head(x, num_classes: int):
    """Dense 256 ReLU + Dropout 0.2, Dense 256 ReLU, softmax (PROTOCOL.md, 'Initialisation')."""
    x = layers.Dense(256, activation="relu", name="head_dense1")(x)
    x = layers.Dropout(0.2, name="head_dropout")(x)
    x = layers.Dense(256, activation="relu", name="head_dense2")(x)
    return softmax_output(x, num_classes)


def classifier_on_backbone(
    backbone: keras.Model,
    input_shape,
    num_classes: int,
    *,
    preprocessing: str,
    pooling: str,
    name: str,
) -> keras.Model:
    """Wrap a feature-map backbone as ``Input -> normalisation -> backbone -> pool -> head``.

    The backbone stays a nested model named ``backbone`` so fine-tuning can freeze it.
    """
    if backbone.name != BACKBONE:
        raise ValueError(f"the backbone model must be named {BACKBONE!r}, got {backbone.name!r}")
    inputs, x = image_input(input_shape, preprocessing)
    x = backbone(x)
    x = features(pool(x, pooling))
    return keras.Model(inputs, protocol_head(x, num_classes), name=name)


def branch_outputs_model(model: keras.Model) -> keras.Model:
    """A model returning each branch's own output (``branchN_predictions`` / ``branchN_features``).

    For analysing multi-branch networks (ensemble, smmb): shares the trained layers, so
    it needs no retraining. Outputs come in branch order, keyed by layer name.
    """
    names = sorted(
        (layer.name for layer in model.layers
         if layer.name.startswith("branch") and layer.name.endswith(("_predictions", "_features"))),
        key=lambda n: (int(n[len("branch"):].split("_")[0]), n),
    )
    if not names:
        raise ValueError(f"model {model.name!r} has no branchN_predictions/_features layers")
    return keras.Model(model.input, {n: model.get_layer(n).output for n in names},
                       name=f"{model.name}_branches")


def _branch_feature_layers(model: keras.Model) -> list[str]:
    names = [layer.name for layer in model.layers
             if layer.name.startswith("branch") and layer.name.endswith(f"_{FEATURES}")]
    return sorted(names, key=lambda n: int(n[len("branch"):].split("_")[0]))


def feature_extractor(model: keras.Model) -> keras.Model:
    """Image -> the features the head consumes, sharing the model's layers (no copy).

    The output of the ``features`` layer, or the ``branchN_features`` of an ensemble whose
    branches each end in a classifier, concatenated in branch order. Freezing it freezes
    everything but the head; a new head on it fine-tunes the model on new classes.
    """
    names = {layer.name for layer in model.layers}
    if FEATURES in names:
        output = model.get_layer(FEATURES).output
    elif branch := _branch_feature_layers(model):
        output = layers.Concatenate(name=FEATURES)([model.get_layer(n).output for n in branch])
    else:
        raise ValueError(
            f"model {model.name!r} has no {FEATURES!r} layer (nor branchN_{FEATURES}); "
            "builders mark the head's input with fer_keras.models._head.features"
        )
    return keras.Model(model.input, output, name=f"{model.name}_{FEATURES}")


def feature_maps_layer(model: keras.Model) -> keras.layers.Layer:
    """The last layer of the feature extractor with a spatial (4-D) output: where Grad-CAM looks.

    A nested pre-trained backbone counts as one such layer. A model saved before the
    ``features`` convention is searched whole.
    """
    try:
        candidates = feature_extractor(model).layers
    except ValueError:
        candidates = model.layers
    for layer in reversed(candidates):
        try:
            output = layer.output
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            continue
        if len(getattr(output, "shape", ())) == 4:
            return layer
    raise ValueError(f"model {model.name!r} has no layer with a spatial output for Grad-CAM")
