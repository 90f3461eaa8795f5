import keras
import numpy as np
import pytest
import tensorflow as tf

from fer_keras.data.class_weights import class_weights
from fer_keras.labels import CANONICAL_CLASSES

# Training counts consistent with PROTOCOL.md's RAF-DB example weights.
RAFDB = {"angry": 694, "disgust": 702, "fear": 284, "happy": 4772, "neutral": 2566, "sad": 1972,
         "surprise": 1297}


def test_simple_weights_match_the_papers_rafdb_example():
    w = class_weights(RAFDB, "simple")
    expected = [6.88, 6.80, 16.80, 1.00, 1.86, 2.42, 3.68]
    assert [round(w[i], 2) for i in range(7)] == pytest.approx(expected, abs=0.011)


def test_conservative_caps_at_three_and_keeps_the_rest():
    w = class_weights(RAFDB, "conservative")
    assert [round(w[i], 2) for i in range(7)] == [3.0, 3.0, 3.0, 1.0, 1.86, 2.42, 3.0]
    assert class_weights([10, 5, 1], "conservative", cap=4.0) == {0: 1.0, 1: 2.0, 2: 4.0}


def test_none_and_bad_input():
    assert class_weights([3, 4], "none") is None
    with pytest.raises(ValueError, match="balance must be one of"):
        class_weights([3, 4], "balanced")
    with pytest.raises(ValueError, match="at least one training image"):
        class_weights([3, 0], "simple")


def _loss_after_fit(class_weight):
    """Loss reported by fit on a tf.data pipeline, with a frozen (lr=0) deterministic model."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 7, 7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy")
    per_sample = keras.losses.categorical_crossentropy(y, model.predict(x, verbose=0)).numpy()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    hist = model.fit(ds, epochs=1, class_weight=class_weight, verbose=0)
    return hist.history["loss"][0], per_sample


def test_class_weight_really_changes_the_loss_with_tf_data():
    plain, per_sample = _loss_after_fit(None)
    assert plain == pytest.approx(per_sample.mean(), rel=1e-5)
    weights = class_weights(dict(zip(CANONICAL_CLASSES, [4, 1, 2, 4, 1, 1, 4], strict=True)), "simple")
    weighted, _ = _loss_after_fit(weights)
    sample_w = np.array([weights[i % 7] for i in range(16)])
    assert weighted == pytest.approx((per_sample * sample_w).mean(), rel=1e-5)
    assert weighted != pytest.approx(plain, rel=1e-3)
