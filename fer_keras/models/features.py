"""The feature extractor of any model: where builders mark it, and how callers find it.

Every builder passes the tensor its head consumes through :func:`features` (a no-op layer
named ``features``; in ensembles whose branches each end in a classifier,
:func:`branch_features` names ``branch1_features``, ...). Freezing (``fer_keras.train.loop``),
triplet embeddings (``fer_keras.train.triplet``), Grad-CAM (``fer_keras.report.gradcam``) and
fine-tuning on new data then need no per-model layer names: :func:`feature_extractor`,
:func:`feature_maps_layer` and :func:`branch_outputs_model` read the marks.
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.registry import FEATURES


def features(x, name: str = FEATURES):
    """Mark ``x`` as what the head consumes (a no-op layer named ``features``): every builder calls
    this where its feature extractor ends, so no caller needs a per-model layer name."""
    return layers.Identity(name=name)(x)


def branch_features(x, branch: str):
    """:func:`features` of one branch (``branchN``) in a model whose branches end in their own classifier."""
    return features(x, f"{branch}_{FEATURES}")


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
            "builders mark the head's input with fer_keras.models.features.features"
        )
    return keras.Model(model.input, output, name=f"{model.name}_{FEATURES}")


def set_features_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze (or unfreeze) everything before the head: the frozen phase of fine-tuning.

    Set on the extractor's layers themselves, never on a wrapper: every ``feature_extractor`` call
    makes a new wrapper model, which already reads ``trainable=True``, and Keras skips assigning a
    value an attribute already holds, so ``feature_extractor(m).trainable = True`` would unfreeze
    nothing.
    """
    for layer in feature_extractor(model).layers:
        layer.trainable = trainable


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
