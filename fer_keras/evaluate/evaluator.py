"""Evaluate a model on an image set: every image once, in file order, then all metrics."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from fer_keras.data.pipeline import eval_dataset
from fer_keras.data.readers import ImageSet
from fer_keras.evaluate.metrics import classification_metrics, collapse_warning
from fer_keras.evaluate.plots import save_confusion_matrices
from fer_keras.evaluate.prior import PriorCorrection
from fer_keras.evaluate.subset import on_model_classes
from fer_keras.evaluate.tta import NO_TTA, TTA, tta_probs
from fer_keras.labels import output_columns
from fer_keras.runs import Run, replacing


def _predict(model, ds: tf.data.Dataset) -> np.ndarray:
    probs = model.predict(ds, verbose=0)
    if isinstance(probs, dict | list | tuple):  # multi-output models: the averaged prediction
        probs = probs["predictions"] if isinstance(probs, dict) else probs[0]
    return np.asarray(probs, dtype=np.float32)


def predict_probs(model, images: ImageSet, res: int, *, model_classes: Sequence[str], pipeline: str,
                  batch: int = 64, tta: TTA = NO_TTA) -> np.ndarray:
    """Probabilities in ``images``' class order, whatever order ``model_classes`` (the model's outputs) is in;
    images loaded as the run's training ``pipeline`` loaded them. ``tta`` (the fast recipe's test-time
    augmentation): :func:`fer_keras.evaluate.tta.tta_probs`, which the predictor applies too."""
    columns = output_columns(model_classes, images.class_names, test_name=images.name)
    ds = eval_dataset(images, res, batch, pipeline=pipeline).map(lambda x, y: x)
    probs = tta_probs(lambda d: _predict(model, d), ds, tta)
    if len(probs) != len(images):
        raise RuntimeError(f"model predicted {len(probs)} of {len(images)} images of {images.name}")
    if probs.shape[1] != len(model_classes):
        raise ValueError(f"the model has {probs.shape[1]} outputs but its class list names {len(model_classes)} "
                         f"classes ({', '.join(model_classes)})")
    return probs[:, columns]


#: What the prior-corrected entry of a split's metrics keeps (beside the plain ones, which stay the protocol's).
CORRECTED_KEYS = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "per_class_accuracy",
                  "confusion_matrix", "collapsed")


def corrected_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                      prior: PriorCorrection) -> dict:
    """The headline metrics after ``prior``'s logit adjustment, with its tau and how tau was chosen."""
    m = classification_metrics(labels, prior.apply(probs, class_names), class_names)
    return {"tau": prior.tau, "chosen_on": prior.chosen_on, **{k: m[k] for k in CORRECTED_KEYS}}


def evaluate_set(model, images: ImageSet, res: int, *, model_classes: Sequence[str], pipeline: str,
                 out_dir: Path | None = None, tag: str = "test", batch: int = 64, tta: TTA = NO_TTA,
                 prior: PriorCorrection | None = None, probs: np.ndarray | None = None) -> dict:
    """Metrics of ``model`` (outputs in ``model_classes`` order) on ``images``; confusion matrices and
    per-image predictions written to ``out_dir`` if given (the report's paired significance tests
    need the per-image predictions). ``prior``: also report the prior-corrected metrics
    (``prior_corrected``); ``probs``: this set's probabilities, already predicted (no model call).
    A set holding only some of the model's classes is scored on those (``classes_evaluated``; evaluate.subset)."""
    images, evaluated = on_model_classes(images, model_classes)
    if probs is None:
        probs = predict_probs(model, images, res, model_classes=model_classes, pipeline=pipeline, batch=batch,
                              tta=tta)
    m = classification_metrics(images.labels, probs, images.class_names, evaluated=evaluated)
    m["dataset"] = images.name
    if evaluated is not None:
        m["classes_evaluated"] = evaluated
    m.update(tta.settings())
    if prior is not None:
        m["prior_corrected"] = corrected_metrics(images.labels, probs, images.class_names, prior)
    warning = collapse_warning(m, f"{tag} ({images.name})")
    if warning:
        print(warning)
    if out_dir is not None:
        run = Run(out_dir)
        save_confusion_matrices(m["confusion_matrix"], images.class_names, run.confusion_stem(tag),
                                title=f"{run.name} on {images.name}")
        save_predictions(run.predictions_file(tag), images, probs)
    return m


def save_predictions(path: Path, images: ImageSet, probs: np.ndarray) -> Path:
    """One CSV row per image (file, y_true, y_pred, class probabilities), written atomically: a full disk or a
    read-only folder leaves the previous file (or none) and no temporary, and the error names ``path``."""
    files = images.paths or [f"{images.name}#{i}" for i in range(len(images))]
    with replacing(path) as tmp:
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "y_true", "y_pred", *(f"p_{c}" for c in images.class_names)])
            for f, t, p in zip(files, images.labels, probs, strict=True):
                writer.writerow([f, int(t), int(p.argmax()), *(f"{v:.6f}" for v in p)])
    return path
