"""TLF-ResNet18 does not collapse: its embedding spreads, triplet training separates classes, and the
linear head copes with the small per-coordinate spread of a unit-norm embedding. Generated data only."""

import keras
import numpy as np
import pytest
from conftest import stable_seed

from fer_keras.models.features import feature_extractor
from fer_keras.registry import build_model
from fer_keras.train.triplet import (
    RecomputeBatchNorm,
    TripletLoss,
    dense_weights,
    fit_linear_head,
    pairwise_squared_distances,
)

MARGIN = 0.2


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(stable_seed("tlf", *parts))


def _patterns(per_class: int, rng: np.random.Generator, res: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of stripes (horizontal, vertical, diagonal) with a random phase, contrast and noise."""
    yy, xx = np.mgrid[0:res, 0:res].astype("float32")
    images, labels = [], []
    for label, (fy, fx) in enumerate([(1.0, 0.0), (0.0, 1.0), (0.7, 0.7)]):
        for _ in range(per_class):
            wave = np.sin(2 * np.pi * (fy * yy + fx * xx) / 8 + rng.uniform(0, 2 * np.pi))
            img = 128 + rng.uniform(50, 100) * wave + rng.normal(0, 15, (res, res))
            images.append(np.repeat(np.clip(img, 0, 255)[..., None], 3, axis=-1))
            labels.append(label)
    return np.stack(images).astype("float32"), np.array(labels)


def _mean_distances(embeddings: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean squared distance between two faces of one class (not the same face), and of two classes."""
    d = np.asarray(pairwise_squared_distances(embeddings))
    same = labels[:, None] == labels[None]
    other = ~np.eye(len(labels), dtype=bool)
    return float(d[same & other].mean()), float(d[~same].mean())


def test_embedding_spans_the_sphere_at_initialisation():
    # Pooled ReLU features L2-normalised as they are sit in a narrow cone (squared distances ~0.01): the
    # triplet loss then equals its margin whatever the weights, and training collapses the embedding.
    keras.utils.set_random_seed(0)
    embed = feature_extractor(build_model("tlf_resnet18", 32, 7))
    x = _rng("init").uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    e = np.asarray(embed(x, training=True))
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-4)
    d = np.asarray(pairwise_squared_distances(e))
    assert d[~np.eye(16, dtype=bool)].mean() > 5 * MARGIN  # random unit vectors: ~2


def test_triplet_training_separates_classes_in_inference_mode():
    # The embedding the head and the checkpoint see (BatchNorm in inference mode) must separate the
    # classes after a few epochs of batch-hard triplet training, not shrink to a point.
    keras.utils.set_random_seed(0)
    rng = _rng("train")
    x, y = _patterns(12, rng)
    xv, yv = _patterns(6, rng)
    embed = feature_extractor(build_model("tlf_resnet18", 32, 3))
    embed.compile(optimizer=keras.optimizers.Adam(1e-3), loss=TripletLoss(MARGIN, "batch_hard"))
    onehot = np.eye(3, dtype="float32")
    batches = [x[i:i + 12] for i in range(0, len(x), 12)]
    embed.fit(x, onehot[y], batch_size=12, epochs=4, shuffle=True, verbose=0,
              validation_data=(xv, onehot[yv]), callbacks=[RecomputeBatchNorm(lambda: batches)])
    same, different = _mean_distances(embed.predict(xv, verbose=0), yv)
    assert different > 0.5 and different > same + MARGIN, (same, different)
    clf = fit_linear_head(embed.predict(x, verbose=0), y, "svm")
    assert np.mean(clf.predict(embed.predict(xv, verbose=0)) == yv) > 0.8


@pytest.mark.parametrize("head", ["svm", "logreg"])
def test_linear_head_separates_unit_embeddings_in_a_narrow_cone(head):
    # The pooled ReLU features of a network, L2-normalised: unit vectors in a narrow cone, each coordinate
    # spread by a few thousandths. A LinearSVC or softmax regression (C=1) on the raw values is dominated by
    # its regulariser (~0.8 of these training images right); on standardised values it separates them.
    # The Dense layer the head becomes (the standardisation folded in) decides as the fitted pipeline does.
    keras.utils.set_random_seed(0)
    model = build_model("tlf_resnet18", 32, 3)
    x, y = _patterns(20, _rng("head"))
    pooled = keras.Model(model.inputs, model.get_layer("pool").output).predict(x, verbose=0)
    cone = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    clf = fit_linear_head(cone, y, head)
    assert np.mean(clf.predict(cone) == y) > 0.95
    kernel, bias = dense_weights(clf, 3)
    dense = keras.layers.Dense(3)
    dense.build((None, cone.shape[1]))
    dense.set_weights([kernel, bias])
    np.testing.assert_array_equal(np.argmax(dense(cone).numpy(), 1), clf.predict(cone))
