import numpy as np
import pytest
from sklearn import metrics as skm

from fer_keras.evaluate.metrics import classification_metrics, collapse_warning

CLASSES = ("angry", "happy", "sad")


def _probs(pred, k=3, rng=None):
    rng = rng or np.random.default_rng(0)
    p = rng.uniform(0, 0.3, (len(pred), k))
    p[np.arange(len(pred)), pred] = 1.0
    return p / p.sum(axis=1, keepdims=True)


def test_metrics_equal_scikit_learn_on_known_predictions():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
    pred = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 1])
    prob = _probs(pred)
    m = classification_metrics(y, prob, CLASSES)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        assert m[f"f1_{avg}"] == pytest.approx(skm.f1_score(y, pred, average=avg))
        assert m[f"precision_{avg}"] == pytest.approx(skm.precision_score(y, pred, average=avg))
        assert m[f"recall_{avg}"] == pytest.approx(skm.recall_score(y, pred, average=avg))
    assert m["auc_ovr_weighted"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr", average="weighted"))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert m["per_class_accuracy"] == pytest.approx({"angry": 2 / 3, "happy": 1.0, "sad": 0.5})
    assert not m["collapsed"]


def test_collapsed_model_is_flagged():
    y = np.array([0, 1, 2, 0, 1, 2])
    m = classification_metrics(y, _probs(np.array([1, 1, 1, 1, 1, 2])), CLASSES)
    assert m["collapsed"] and m["dominant_class"] == "happy"
    assert "happy" in collapse_warning(m, "wild")


def test_auc_is_none_when_a_class_has_no_test_image():
    m = classification_metrics(np.array([0, 1, 0]), _probs(np.array([0, 1, 1])), CLASSES)
    assert m["auc_ovr_weighted"] is None
    assert m["per_class_accuracy"]["sad"] is None


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(np.array([0, 1]), np.ones((2, 4)) / 4, CLASSES)
