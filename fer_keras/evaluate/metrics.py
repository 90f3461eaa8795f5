"""Classification metrics, computed with scikit-learn on every test image exactly once.

The paper does not say whether its precision/recall/F1 are macro or weighted, so
both are reported; balanced accuracy and prevalence-weighted one-vs-rest AUC follow
El Cheikh et al.'s comparison. Balanced accuracy equals scikit-learn's ``balanced_accuracy_score``:
the mean recall over the classes *present* in ``y_true`` (a class without test images has no
recall to average), so it stays comparable between a 7-class set and one that lacks a class.

A model that has collapsed towards few classes can still post a plausible accuracy on an
imbalanced set, so ``collapse_reasons`` flags any of: one class takes more than half of the
predictions; two or more present classes are never predicted; a present class is predicted
more than 3x as often as it occurs; balanced accuracy within 0.03 of chance (1 / classes
present) or below it. Only classes present in ``y_true`` count: a class with no test image
can be neither missed nor over-predicted relative to a share of zero.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

#: A model whose most frequent prediction takes more than this share of a test set is flagged.
COLLAPSE_SHARE = 0.5
#: ... or that never predicts this many of the classes present in the test set ...
COLLAPSE_NEVER_PREDICTED = 2
#: ... or that predicts a present class more than this many times as often as it occurs ...
COLLAPSE_OVERPREDICTION = 3.0
#: ... or whose balanced accuracy is at most this far above chance (1 / classes present).
COLLAPSE_CHANCE_MARGIN = 0.03


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present (rows of ``cm`` with images), as scikit-learn computes it."""
    cm = np.asarray(cm, dtype=float)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present])) if present.any() else float("nan")


def collapse_reasons(cm: np.ndarray, class_names: Sequence[str],
                     collapse_share: float = COLLAPSE_SHARE) -> list[str]:
    """Why predictions summarised by confusion matrix ``cm`` look collapsed (empty: they do not)."""
    cm = np.asarray(cm, dtype=float)
    n = cm.sum()
    if n == 0:
        return []
    true_share, pred_share = cm.sum(axis=1) / n, cm.sum(axis=0) / n
    present = true_share > 0
    reasons = []
    top = int(pred_share.argmax())
    if pred_share[top] > collapse_share:
        reasons.append(f"{pred_share[top]:.0%} of predictions are {class_names[top]!r}")
    never = [class_names[i] for i in np.flatnonzero(present & (pred_share == 0))]
    if len(never) >= COLLAPSE_NEVER_PREDICTED:
        reasons.append(f"never predicts {', '.join(never)}")
    over = np.flatnonzero(present & (pred_share > COLLAPSE_OVERPREDICTION * true_share))
    reasons += [f"predicts {class_names[i]!r} {pred_share[i] / true_share[i]:.1f}x as often as it occurs"
                for i in over]
    chance = 1 / int(present.sum())
    bal = balanced_accuracy(cm)
    if bal <= chance + COLLAPSE_CHANCE_MARGIN:
        reasons.append(f"balanced accuracy {bal:.3f} is near chance ({chance:.3f})")
    return reasons


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str],
                           collapse_share: float = COLLAPSE_SHARE, evaluated: Sequence[str] | None = None) -> dict:
    """All suite metrics for integer labels ``y_true`` and class probabilities ``y_prob``.

    ``evaluated``: a set holding only these of ``class_names`` (CK+ has no neutral): precision, recall and
    F1 average over them, so a class the set cannot have does not count as a class scored zero; a
    prediction of it still counts as wrong."""
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
        "balanced_accuracy": balanced_accuracy(cm),
    }
    scored = labels if evaluated is None else [list(class_names).index(c) for c in evaluated]
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=scored, average=avg,
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
    out["never_predicted"] = [class_names[i] for i in range(k) if support[i] and not shares[i]]
    out["collapse_reasons"] = collapse_reasons(cm, class_names, collapse_share)
    out["collapsed"] = bool(out["collapse_reasons"])
    return out


def collapse_warning(m: dict, where: str) -> str | None:
    """A console warning for a collapsed split, naming every rule it broke."""
    if m.get("collapsed"):
        reasons = m.get("collapse_reasons") or [f"{m['dominant_share']:.0%} of predictions are "
                                                f"{m['dominant_class']!r}"]
        return f"WARNING: {where}: the model may have collapsed: {'; '.join(reasons)}"
    return None
