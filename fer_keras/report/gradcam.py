"""Grad-CAM heatmaps (Selvaraju et al. 2017) for chosen runs: where does the model look?

The only part of the report that loads TensorFlow. The heatmap is taken at the model's
last spatial feature map (``features.feature_maps_layer``: a nested pre-trained backbone
counts as one layer). Images are picked from the run's per-image
predictions (cross-domain set first, else validation): one per true class, up to ``n_images``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from fer_keras.data.images import open_rgb
from fer_keras.models.features import feature_maps_layer
from fer_keras.report.figures import _save, plt
from fer_keras.runs import Run


def heatmap(model, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM map in [0, 1] at the image's size, and the class probabilities."""
    layer = feature_maps_layer(model)
    outputs = model.output[0] if isinstance(model.output, list | tuple) else model.output
    grad_model = keras.Model(model.inputs, [layer.output, outputs])
    x = tf.convert_to_tensor(image[None].astype("float32"))
    with tf.GradientTape() as tape:
        features, probs = grad_model(x, training=False)
        target = int(tf.argmax(probs[0])) if class_index is None else class_index
        score = probs[:, target]
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.reduce_sum(features * weights[:, None, None, :], axis=-1))[0].numpy()
    cam = cam / cam.max() if cam.max() > 0 else cam
    size = image.shape[:2][::-1]
    cam = np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize(size, Image.BILINEAR)) / 255.0
    return cam, probs[0].numpy()


def pick_images(run_dir: Path, n_images: int) -> list[tuple[str, str]]:
    """(file, true class name) pairs: one per class from the run's predictions files.

    The name comes from the file's own ``p_<class>`` columns: ``y_true`` counts in the
    evaluation set's class order, which need not be the model's.
    """
    run = Run(run_dir)
    files = [*run.crossdomain_predictions(), run.predictions_file("val")]
    for path in files:
        if path.is_file():
            p = pd.read_csv(path)
            names = [c.removeprefix("p_") for c in p.columns if c.startswith("p_")]
            p = p[p["file"].map(lambda f: Path(f).is_file())]
            if len(p):
                chosen = p.groupby("y_true", sort=True).head(1).head(n_images)
                return [(f, names[int(t)]) for f, t in zip(chosen["file"], chosen["y_true"], strict=True)]
    return []


def gradcam_figures(run_dirs: list[Path], out: Path, *, n_images: int = 4) -> list[Path]:
    """One PNG per run: each picked image with its Grad-CAM overlay for the predicted class."""
    written = []
    for run_dir in map(Path, run_dirs):
        images = pick_images(run_dir, n_images)
        if not images:
            print(f"gradcam: {run_dir.name} has no predictions file with readable images; skipped")
            continue
        model = Run(run_dir).model()
        res = int(model.inputs[0].shape[1])
        classes = Run(run_dir).classes()
        fig, axes = plt.subplots(2, len(images), figsize=(2.2 * len(images), 4.6), squeeze=False)
        for col, (file, true) in enumerate(images):
            img = np.asarray(open_rgb(file).resize((res, res), Image.BILINEAR), dtype=np.float32)
            cam, probs = heatmap(model, img)
            pred = int(probs.argmax())
            axes[0, col].imshow(img.astype(np.uint8))
            axes[0, col].set_title(f"true {true}", fontsize=8)
            axes[1, col].imshow(img.astype(np.uint8))
            axes[1, col].imshow(cam, cmap="jet", alpha=0.45)
            axes[1, col].set_title(f"pred {classes[pred]} ({probs[pred]:.2f})", fontsize=8)
            for ax in axes[:, col]:
                ax.axis("off")
        fig.suptitle(f"Grad-CAM: {run_dir.name}", fontsize=9)
        written.append(_save(fig, out / f"{run_dir.name}.png"))
    return written
