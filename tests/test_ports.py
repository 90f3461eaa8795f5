"""The ported methods' own pieces: ESR's loss and prediction, the masking block, SE features,
the triplet loss, the linear head stored as a Dense layer, weighted sampling. Generated data only."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import stable_seed

from fer_keras.config import ConfigError, make_config
from fer_keras.data.pipeline import TrainingData, epoch_order
from fer_keras.data.readers import ImageSet
from fer_keras.models.esr import branch_probs_model
from fer_keras.models.resmasking import apply_mask, mask_depth, mask_model, masking_block
from fer_keras.models.se_resnet import se_feature_model
from fer_keras.registry import build_model
from fer_keras.train.triplet import TripletLoss, dense_weights, fit_linear_head, triplet_loss

RNG = np.random.default_rng(0)  # replaced before every test: see fresh_rng


@pytest.fixture(autouse=True)
def fresh_rng(request) -> None:
    """Each test draws from its own generator, seeded by its name: its data does not depend on which
    tests ran before it (``-k``, reordering, a new test)."""
    global RNG
    RNG = np.random.default_rng(stable_seed(request.node.name))


def _images(n, res=32):
    return RNG.uniform(0, 255, (n, res, res, 3)).astype("float32")


def _onehot(labels, k=7):
    return np.eye(k, dtype="float32")[labels]


# --- ESR --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def esr3():
    model = build_model("esr", 32, 7, branches=3)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_esr_prediction_is_the_branch_mean(esr3):
    x = _images(6)
    branches = branch_probs_model(esr3).predict(x, verbose=0)
    assert len(branches) == 3
    np.testing.assert_allclose(esr3.predict(x, verbose=0), np.mean(branches, axis=0), atol=1e-6)


def test_esr_loss_is_the_sum_of_branch_losses(esr3):
    x, y = _images(8), _onehot(RNG.integers(0, 7, 8))
    branches = branch_probs_model(esr3).predict(x, verbose=0)
    expected = sum(float(keras.losses.categorical_crossentropy(y, b).numpy().mean()) for b in branches)
    # Through Keras' own test step (compute_loss on the model output) ...
    loss = esr3.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(expected, rel=1e-4)
    # ... and when compute_loss has to recompute the branches from the input.
    plain = tf.constant(esr3.predict(x, verbose=0))
    direct = esr3.compute_loss(x=tf.constant(x), y=tf.constant(y), y_pred=plain, training=False)
    assert float(direct) == pytest.approx(expected, rel=1e-4)


def test_esr_options_fail_early():
    with pytest.raises(ValueError, match="schedule"):
        build_model("esr", 32, 7, schedule="greedy")
    with pytest.raises(ValueError, match="54 px"):
        build_model("esr", 48, 7, branches=1, padding="valid")


# --- Residual Masking Network ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 2, 3])
def test_masking_block_keeps_the_shape_and_mask_lies_in_0_1(depth):
    inp = keras.Input((8, 8, 4))
    m = masking_block(inp, depth, name="m")
    model = keras.Model(inp, [m, apply_mask(inp, depth, name="a")])
    x = RNG.normal(0, 3, (2, 8, 8, 4)).astype("float32")
    mask, out = model.predict(x, verbose=0)
    assert mask.shape == x.shape and out.shape == x.shape
    assert mask.min() >= 0 and mask.max() <= 1


def test_mask_depth_follows_the_feature_size():
    assert [mask_depth(s, d) for s, d in [(56, 4), (28, 3), (14, 2), (7, 1), (6, 4), (5, 2), (48, 4)]] == \
        [4, 3, 2, 1, 2, 1, 4]


def test_resmasking_at_48_keeps_a_spatial_extent():
    model = build_model("resmasking_net", 48, 7, mask_growth=1)
    masks = mask_model(model)
    sizes = [t.shape[1] for t in masks.outputs]
    assert sizes == [48, 24, 12, 6]
    out = model.predict(_images(2, 48), verbose=0)
    assert out.shape == (2, 7) and np.all(np.isfinite(out))


# --- SE-ResNet --------------------------------------------------------------------------------------------

def test_se_feature_model_returns_every_se_block():
    model = build_model("se_resnet18", 32, 7, ratio=8)
    feats = se_feature_model(model).predict(_images(1), verbose=0)
    assert len(feats) == 8 and feats["stage1_block1"].shape == (1, 32, 32, 64)
    assert feats["stage4_block2"].shape == (1, 4, 4, 512)
    att = se_feature_model(model, "attention").predict(_images(1), verbose=0)
    assert all(0 <= a.min() and a.max() <= 1 for a in att.values())
    assert model.get_layer("stage4_block2_se_reduce").units == 512 // 8


# --- Triplet loss -----------------------------------------------------------------------------------------

def test_triplet_loss_on_a_hand_made_batch_equals_the_formula():
    a, p, n = np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 0.6])
    emb = np.stack([a, p, n]).astype("float32")
    labels = np.array([0, 0, 1])
    margin = 0.5
    f = lambda a, p, n: max(0.0, np.sum((a - p) ** 2) - np.sum((a - n) ** 2) + margin)  # noqa: E731
    # Anchors a and p each have one positive and one negative; n has no positive.
    expected = (f(a, p, n) + f(p, a, n)) / 2
    for mining in ("batch_hard", "batch_all"):
        value = float(TripletLoss(margin, mining)(_onehot(labels), emb))
        terms = [f(a, p, n), f(p, a, n)]
        want = expected if mining == "batch_hard" else sum(terms) / sum(t > 0 for t in terms)
        assert value == pytest.approx(want, rel=1e-5), mining
    assert f(a, p, n) > 0  # the batch is not trivially satisfied


def _brute_force(labels, emb, margin):
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    idx = range(len(labels))
    hard, valid = [], []
    for i in idx:
        pos = [d[i, j] for j in idx if j != i and labels[j] == labels[i]]
        neg = [d[i, j] for j in idx if labels[j] != labels[i]]
        if pos and neg:
            valid.append(max(0.0, max(pos) - min(neg) + margin))
    terms = [max(0.0, d[i, j] - d[i, k] + margin) for i, j, k in itertools.product(idx, idx, idx)
             if i != j and labels[i] == labels[j] and labels[k] != labels[i]]
    hard = np.mean(valid)
    positive = [t for t in terms if t > 1e-16]
    return hard, sum(terms) / max(len(positive), 1)


def test_triplet_loss_mining_matches_brute_force():
    labels = RNG.integers(0, 3, 10)
    emb = RNG.normal(size=(10, 4)).astype("float32")
    hard, everything = _brute_force(labels, emb, 0.3)
    assert float(np.mean(triplet_loss(labels, emb, 0.3, "batch_hard"))) == pytest.approx(hard, rel=1e-4)
    assert float(np.mean(triplet_loss(labels, emb, 0.3, "batch_all"))) == pytest.approx(everything, rel=1e-4)


# --- Linear head as a Dense layer -------------------------------------------------------------------------

def _clusters(classes, per_class=20, dim=16):
    centres = RNG.normal(0, 5, (max(classes) + 1, dim))
    labels = np.repeat(classes, per_class)
    return (centres[labels] + RNG.normal(0, 0.3, (len(labels), dim))).astype("float32"), labels


@pytest.mark.parametrize("head", ["svm", "lda", "logreg"])
@pytest.mark.parametrize("classes", [list(range(7)), [0, 3], [0, 1, 2, 4, 5, 6]])
def test_linear_head_classifies_separable_embeddings_and_converts_to_dense(head, classes):
    x, y = _clusters(classes)
    clf = fit_linear_head(x, y, head)
    assert np.mean(clf.predict(x) == y) == 1.0
    kernel, bias = dense_weights(clf, 7)
    dense = keras.layers.Dense(7)
    dense.build((None, x.shape[1]))
    dense.set_weights([kernel, bias])
    probs = keras.layers.Softmax()(dense(x)).numpy()
    np.testing.assert_array_equal(np.argmax(probs, 1), clf.predict(x))
    if head == "logreg":  # softmax regression: the softmax is the estimator's own probability
        np.testing.assert_allclose(probs[:, clf.classes_], clf.predict_proba(x), atol=1e-4)


def test_tlf_model_carries_the_head_through_save_and_load(tmp_path):
    model = build_model("tlf_resnet18", 32, 7)
    kernel = RNG.normal(size=(512, 7)).astype("float32")
    model.get_layer("head_decision").set_weights([kernel, np.zeros(7, "float32")])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    x = _images(3)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert loaded.layers[-1].name == "predictions"


# --- Weighted sampling ------------------------------------------------------------------------------------

def test_weighted_sampling_draws_classes_uniformly():
    labels = np.array([0] * 60 + [1] * 6 + [2] * 14)
    images = ImageSet("gen", ("a", "b", "c"), labels, pixels=RNG.integers(0, 256, (80, 8, 8), dtype=np.uint8))
    data = TrainingData(images, 8, 80, seed=1, sampling="weighted")
    drawn = np.concatenate([np.argmax(y, 1) for _, y in data.epochs(0, 5)])
    assert len(drawn) == 5 * 80
    expected = np.concatenate([labels[epoch_order(labels, 1, e, "weighted")] for e in range(5)])
    assert (drawn == expected).all()
    # 400 uniform draws: the class frequencies' standard deviation is 0.024; 0.15 is six of them.
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / len(drawn), [1 / 3] * 3, atol=0.15)


def test_weighted_sampling_refuses_class_weights_too():
    with pytest.raises(ConfigError, match="balance"):
        make_config({"sampling": "weighted", "balance": "conservative"})
    assert make_config({"sampling": "weighted", "balance": "none"}).sampling == "weighted"
