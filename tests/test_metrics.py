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


def test_balanced_accuracy_averages_recall_over_the_classes_present_as_scikit_learn_does():
    y = np.array([0, 0, 0, 1, 1, 1, 1])  # 'sad' has no image: its recall is not averaged in as 0
    pred = np.array([0, 0, 1, 1, 1, 2, 1])
    m = classification_metrics(y, _probs(pred), CLASSES)
    with pytest.warns(UserWarning):  # scikit-learn warns that 'sad' is predicted but absent
        expected = skm.balanced_accuracy_score(y, pred)
    assert m["balanced_accuracy"] == pytest.approx(expected) == pytest.approx((2 / 3 + 3 / 4) / 2)


FIVE = ("angry", "disgust", "fear", "happy", "sad")


def _reasons(y: np.ndarray, pred: np.ndarray, classes=FIVE) -> tuple[dict, list[str]]:
    m = classification_metrics(y, _probs(pred, k=len(classes)), classes)
    assert m["collapsed"] == bool(m["collapse_reasons"])
    return m, m["collapse_reasons"]


def test_each_collapse_rule_fires_on_its_own():
    y = np.arange(100) % 5
    m, reasons = _reasons(y, y)
    assert reasons == [] and m["never_predicted"] == []
    # Two present classes never predicted; shares stay under 1/2 and 3x, balanced accuracy 0.6.
    m, reasons = _reasons(y, np.where(y >= 3, y - 3, y))
    assert m["never_predicted"] == ["happy", "sad"] and len(reasons) == 1 and "never predicts" in reasons[0]
    # One class never predicted is not enough.
    assert _reasons(y, np.where(y == 4, 0, y))[1] == []
    # A rare class predicted 4x as often as it occurs: 2 'disgust' images, 8 'disgust' predictions.
    y_rare = np.array([1, 1] + [0, 2, 3, 4] * 24 + [0, 2])
    pred = y_rare.copy()
    pred[np.flatnonzero(y_rare == 0)[:6]] = 1
    m, reasons = _reasons(y_rare, pred)
    assert len(reasons) == 1 and "'disgust' 4.0x" in reasons[0]
    # Balanced accuracy 0.27 on four classes: within 0.03 of chance (0.25), shares all equal.
    y4 = np.arange(100) % 4
    m, reasons = _reasons(y4, np.where(np.arange(100) < 27, y4, (y4 + 1) % 4), FIVE[:4])
    assert len(reasons) == 1 and "near chance" in reasons[0]
    # Classes absent from the truth are neither 'never predicted' nor over-predicted.
    m, reasons = _reasons(y4, y4)
    assert m["never_predicted"] == [] and reasons == []
    warning = collapse_warning(_reasons(y, np.where(y >= 3, y - 3, y))[0], "val")
    assert "never predicts happy, sad" in warning
