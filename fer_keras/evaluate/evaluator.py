"""Evaluate a model on an image set: every image once, in file order, then all metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_keras.data.pipeline import make_dataset
from fer_keras.data.readers import ImageSet
from fer_keras.evaluate.metrics import classification_metrics, collapse_warning
from fer_keras.evaluate.plots import save_confusion_matrices


def predict_probs(model, images: ImageSet, res: int, batch: int = 64) -> np.ndarray:
    ds = make_dataset(images, res, batch, training=False, cache=False).map(lambda x, y: x)
    probs = model.predict(ds, verbose=0)
    if isinstance(probs, dict | list | tuple):  # multi-output models: the averaged prediction
        probs = probs["predictions"] if isinstance(probs, dict) else probs[0]
    if len(probs) != len(images):
        raise RuntimeError(f"model predicted {len(probs)} of {len(images)} images of {images.name}")
    return np.asarray(probs)


def evaluate_set(model, images: ImageSet, res: int, *, out_dir: Path | None = None, tag: str = "test",
                 batch: int = 64) -> dict:
    """Metrics of ``model`` on ``images``; confusion matrices written to ``out_dir`` if given."""
    probs = predict_probs(model, images, res, batch)
    m = classification_metrics(images.labels, probs, images.class_names)
    m["dataset"] = images.name
    warning = collapse_warning(m, f"{tag} ({images.name})")
    if warning:
        print(warning)
    if out_dir is not None:
        save_confusion_matrices(m["confusion_matrix"], images.class_names, Path(out_dir) / f"confusion_{tag}",
                                title=f"{Path(out_dir).name} on {images.name}")
    return m
