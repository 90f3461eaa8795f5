"""A bare 7-output ``.keras`` file with no class names beside it is read in the canonical order, with a warning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fer_keras.console import Notice
from fer_keras.labels import CANONICAL_CLASSES
from fer_keras.predict.predictor import load_run


def _always(index: int, path) -> None:
    """A 7-output model that answers output ``index`` for every image."""
    inp = keras.Input((32, 32, 3))
    dense = keras.layers.Dense(7, activation="softmax")
    out = dense(keras.layers.GlobalAveragePooling2D()(inp))
    bias = np.full(7, -10.0, np.float32)
    bias[index] = 10.0
    dense.set_weights([np.zeros((3, 7), np.float32), bias])
    keras.Model(inp, out).save(path)


@pytest.mark.parametrize("index", [1, 5])
def test_a_bare_seven_output_file_is_read_in_the_canonical_order_with_a_warning(tmp_path, index):
    path = tmp_path / "model.keras"  # no model.classes.json, no classes.json
    _always(index, path)
    with pytest.warns(Notice, match=r"no model\.classes\.json or classes\.json .*assuming the canonical order"):
        predictor = load_run(path)
    assert predictor.classes == tuple(CANONICAL_CLASSES)
    (result,) = predictor.predict(np.full((32, 32, 3), 128, np.uint8))
    assert result.label == CANONICAL_CLASSES[index]  # output k means the k-th canonical class


def test_a_bare_file_of_another_width_is_refused(tmp_path):
    inp = keras.Input((32, 32, 3))
    keras.Model(inp, keras.layers.Dense(5, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))).save(
        tmp_path / "five.keras")
    with pytest.raises(FileNotFoundError, match="5 outputs and no class names"):
        load_run(tmp_path / "five.keras")
