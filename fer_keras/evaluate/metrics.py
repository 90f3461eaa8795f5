"""Classification metrics, computed with scikit-learn on every test image exactly once.

The paper does not say whether its precision/recall/F1 are macro or weighted, so
both are reported; balanced accuracy and prevalence-weighted one-vs-rest AUC follow
El Cheikh et al.'s comparison.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

#: A model whose most frequent prediction takes more than this share of a test set is flagged.
COLLAPSE_SHARE = 0.5


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str],
                           collapse_share: float = COLLAPSE_SHARE) -> dict:
    """All suite metrics for integer labels ``y_true`` and class probabilities ``y_prob``."""
    y_true = np.asarray(y_true, dtype=int)
    y_prob = np.asarray(y_prob, dtype=float)
    k = len(class_names)
    if y_prob.ndim != 2 or y_prob.shape != (len(y_true), k):
        raise ValueError(f"y_prob must have shape ({len(y_true)}, {k}), got {y_prob.shape}")
    y_pred = y_prob.argmax(axis=1)
    labels = list(range(k))
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    out: dict = {
        "n": int(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.recall_score(y_true, y_pred, labels=labels, average="macro",
                                                    zero_division=0)),
    }
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg,
                                                         zero_division=0)
        out.update({f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)})
    present = np.unique(y_true)
    if len(present) == k:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["auc_ovr_weighted"] = float(skm.roc_auc_score(y_true, y_prob, multi_class="ovr",
                                                              average="weighted", labels=labels))
    else:
        out["auc_ovr_weighted"] = None  # undefined when a class has no test image
    out["per_class_accuracy"] = {
        name: (float(cm[i, i] / support[i]) if support[i] else None) for i, name in enumerate(class_names)
    }
    out["support"] = {name: int(s) for name, s in zip(class_names, support, strict=True)}
    out["confusion_matrix"] = cm.tolist()
    shares = np.bincount(y_pred, minlength=k) / max(len(y_pred), 1)
    top = int(shares.argmax())
    out["dominant_class"] = class_names[top]
    out["dominant_share"] = float(shares[top])
    out["collapsed"] = bool(shares[top] > collapse_share)
    return out


def collapse_warning(m: dict, where: str) -> str | None:
    if m.get("collapsed"):
        return (f"WARNING: {where}: {m['dominant_share']:.0%} of predictions are "
                f"{m['dominant_class']!r}; the model may have collapsed to one class")
    return None
