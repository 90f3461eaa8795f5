"""TLF-ResNet18 does not collapse: its embedding spreads, triplet training separates classes, and the
linear head copes with the small per-coordinate spread of a unit-norm embedding. Generated data only."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import stable_seed

from fer_keras.config import make_config
from fer_keras.models.features import feature_extractor
from fer_keras.registry import build_model
from fer_keras.runs import read_json, write_json
from fer_keras.train import batchnorm, triplet
from fer_keras.train.batchnorm import RecomputeBatchNorm, read_statistics, recompute_statistics
from fer_keras.train.callbacks import BestCheckpoint, protocol_callbacks
from fer_keras.train.loop import RunContext
from fer_keras.train.triplet import (
    EMBEDDING_FILE,
    TLF_CHECKPOINT,
    CentroidScore,
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
    # classes after two epochs of batch-hard triplet training, not shrink to a point (squared distances of
    # about 2 between classes, 0.1 within).
    keras.utils.set_random_seed(0)
    rng = _rng("train")
    x, y = _patterns(12, rng)
    xv, yv = _patterns(6, rng)
    embed = feature_extractor(build_model("tlf_resnet18", 32, 3))
    embed.compile(optimizer=keras.optimizers.Adam(1e-3), loss=TripletLoss(MARGIN, "batch_hard"))
    onehot = np.eye(3, dtype="float32")
    batches = [x[i:i + 12] for i in range(0, len(x), 12)]
    # Validation and prediction in one batch each (one traced function apiece, no short last batch).
    embed.fit(x, onehot[y], batch_size=12, epochs=2, shuffle=True, verbose=0, validation_data=(xv, onehot[yv]),
              validation_batch_size=len(xv), callbacks=[RecomputeBatchNorm(lambda: batches)])
    both = embed.predict(np.concatenate([x, xv]), batch_size=len(x) + len(xv), verbose=0)
    train, val = both[:len(x)], both[len(x):]
    same, different = _mean_distances(val, yv)
    assert different > 0.5 and different > same + MARGIN, (same, different)
    clf = fit_linear_head(train, y, "svm")
    assert np.mean(clf.predict(val) == yv) > 0.8


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


# --- the embedding's checkpoint criterion: nearest-centroid balanced accuracy, not the triplet loss ---

def _clusters(counts: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(points near the unit vector of their class in 3-d, one-hot labels), ``counts[c]`` points of class c."""
    labels = np.repeat(np.arange(3), counts)
    return (np.eye(3)[labels] + rng.normal(0, 0.1, (len(labels), 3))).astype("float32"), np.eye(3)[labels]


def test_centroid_score_is_chance_for_a_collapsed_embedding_and_one_for_a_separable_one():
    # The validation set is imbalanced (6/2/2): a collapsed embedding predicts one class (the first, on ties),
    # which plain accuracy would score 0.6; the balanced score is chance, 1/3.
    rng = _rng("centroid")
    reference, validation = [_clusters(counts, rng) for counts in ([4, 4, 4], [6, 2, 2])]
    batches = tf.data.Dataset.from_tensor_slices(validation).batch(5)
    inputs = keras.Input((3,))
    collapsed = keras.layers.Dense(3, kernel_initializer="zeros", bias_initializer="ones")
    for model, expected in ((keras.Model(inputs, inputs), 1.0), (keras.Model(inputs, collapsed(inputs)), 1 / 3)):
        score = CentroidScore(lambda: tf.data.Dataset.from_tensor_slices(reference).batch(12), batches)
        score.set_model(model)
        logs: dict = {}
        score.on_epoch_end(0, logs)
        assert logs[TLF_CHECKPOINT] == pytest.approx(expected)


def _tiny_embedding() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization()(x))
    return keras.Model(inputs, keras.layers.UnitNormalization()(keras.layers.Dense(8)(x)))


def test_embedding_checkpoint_is_chosen_by_the_centroid_score_of_the_recomputed_statistics(tmp_path):
    # As _fit_embedding wires it: the scorer among the protocol's callbacks, RecomputeBatchNorm after them.
    # The score is in the logs when the checkpoint and the log read them, and it was computed with the
    # BatchNorm statistics recomputed for the validation pass.
    keras.utils.set_random_seed(0)
    rng = _rng("checkpoint")
    x, y = _patterns(4, rng)
    xv, yv = _patterns(2, rng)
    onehot = np.eye(3, dtype="float32")
    sample = tf.data.Dataset.from_tensor_slices((x, onehot[y])).batch(6)
    val = tf.data.Dataset.from_tensor_slices((xv, onehot[yv])).batch(6)
    seen = []

    class Spy(CentroidScore):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(read_statistics(self.model))
            super().on_epoch_end(epoch, logs)

    model = _tiny_embedding()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=TripletLoss(MARGIN, "batch_hard"))
    cfg = make_config({"tensorboard": False, "epochs": 2})
    callbacks = protocol_callbacks(cfg, tmp_path, "embedding", checkpoint=EMBEDDING_FILE, monitor=TLF_CHECKPOINT,
                                   mode="max", scorers=[Spy(lambda: sample, val)])
    model.fit(x, onehot[y], batch_size=6, epochs=2, shuffle=False, verbose=0, validation_data=val,
              callbacks=[*callbacks, RecomputeBatchNorm(lambda: sample)])
    best = read_json(tmp_path / "embedding.json")
    assert 0 <= best[TLF_CHECKPOINT] <= 1 and best["epoch"] in (1, 2)
    assert TLF_CHECKPOINT in (tmp_path / "log_embedding.csv").read_text().splitlines()[0].split(",")
    recompute_statistics(model, sample)  # the weights of the last epoch
    assert all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(seen[-1], read_statistics(model), strict=True))


@pytest.mark.parametrize("option", [False, True])
def test_the_embedding_recomputes_the_statistics_once_per_validation(tmp_path, monkeypatch, option):
    # Its own RecomputeBatchNorm (on its BN_IMAGES sample), or with batchnorm_recompute the protocol's (on the
    # run's bn_batches): never both.
    keras.utils.set_random_seed(0)
    rng = _rng("once")
    x, y = _patterns(4, rng)
    onehot = np.eye(3, dtype="float32")
    data = tf.data.Dataset.from_tensor_slices((x, onehot[y])).batch(6)
    own, protocol = data.take(1), data.skip(1)
    monkeypatch.setattr(triplet, "statistics_batches", lambda *args: lambda: own)
    seen = []
    monkeypatch.setattr(batchnorm, "recompute_statistics", lambda model, batches: seen.append(batches))
    cfg = make_config({"model": "tlf_resnet18", "recipe": "fast", "batchnorm_recompute": option, "epochs": 2,
                       "tensorboard": False})
    ctx = RunContext(cfg=cfg, run_dir=tmp_path, splits=SimpleNamespace(train=None),
                     strategy=tf.distribute.get_strategy(), global_batch=6,
                     train_data=lambda phase, first: data.repeat(), steps_per_epoch=2, val_ds=data,
                     class_weight=None, verbose=0, bn_batches=(lambda: protocol) if option else None)
    triplet._fit_embedding(ctx, _tiny_embedding(), {"margin": MARGIN, "mining": "batch_hard"})
    assert len(seen) == 2 and all(batches is (protocol if option else own) for batches in seen)  # one a validation
    assert ctx.extra_callbacks == []


def test_an_embedding_checkpoint_of_another_criterion_is_replaced_on_resume(tmp_path):
    # A run begun when the embedding was chosen by val_loss resumes: that score does not compare with the new one.
    write_json(tmp_path / "embedding.json", {"val_loss": 0.1, "epoch": 3})
    checkpoint = BestCheckpoint(tmp_path / EMBEDDING_FILE, monitor=TLF_CHECKPOINT, mode="max")
    checkpoint.on_train_begin()
    assert checkpoint.best == -np.inf
