"""Input pipelines compared on the same folder: the tf.data pipeline against the legacy one.

Both produce the training stream exactly as ``train_run`` consumes it: same images,
same batch size, the same augmentation recipe (one affine warp per image after a random
flip: ImageDataGenerator.random_transform image by image in the legacy pipeline, one
batched ImageProjectiveTransformV3 in tf.data). The first epoch is reported on its own
(it decodes every file; its time includes building the pipeline, where the tf.data one
decodes the whole split into memory); the steady rate is the median of the later epochs,
which is what a long training run sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from fer_keras.config import DEFAULT_SEED
from fer_keras.data.legacy import make_legacy_dataset
from fer_keras.data.pipeline import make_dataset
from fer_keras.data.readers import DatasetError, ImageSet, read_dataset
from fer_keras.timing import Stopwatch


def load_images(folder: Path, max_images: int | None = None, seed: int = 0) -> ImageSet:
    """The training images of ``folder`` (a class-per-folder set, or a dataset with train/)."""
    parts = read_dataset(Path(folder))
    images = parts.get("train") or parts.get("all")
    if images is None:
        raise DatasetError(f"{folder} has no train/ split and no class folders at its top level")
    if max_images and len(images) > max_images:
        idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:max_images])
        images = images.subset(idx, f"{images.name}[{max_images} random]")
    return images


def _epoch_seconds(ds) -> tuple[float, int]:
    clock, n = Stopwatch(), 0
    for x, _ in ds:
        n += int(x.shape[0])
    return clock.seconds, n


def stream_rate(make: Callable[[], tf.data.Dataset], epochs: int) -> dict:
    """Images/s of the first epoch (building the dataset ``make()`` included) and the median of the
    ``epochs - 1`` later ones."""
    clock = Stopwatch()
    ds = make()
    n = _epoch_seconds(ds)[1]
    first = clock.seconds
    later = [_epoch_seconds(ds)[0] for _ in range(max(1, epochs - 1))]
    return {"images_per_epoch": n, "first_epoch_images_per_s": n / first,
            "images_per_s": n / float(np.median(later)), "epoch_seconds": [round(s, 4) for s in later]}


def pipeline_throughput(images: ImageSet, res: int, batch: int, epochs: int = 4, seed: int = DEFAULT_SEED) -> dict:
    """tf.data and legacy rates on the same images, measured back to back; their ratio."""
    tfdata = stream_rate(lambda: make_dataset(images, res, batch, training=True, seed=seed, cache=True), epochs)
    legacy = stream_rate(lambda: make_legacy_dataset(images, res, batch, training=True, seed=seed), epochs)
    return {
        "folder": images.name, "images": len(images), "res": res, "batch": batch, "epochs": epochs,
        "augmentation": "flip + rotation 20, shift 0.2, zoom 0.2 (one affine warp), both pipelines",
        "tfdata": tfdata, "legacy": legacy,
        "ratio_tfdata_over_legacy": tfdata["images_per_s"] / legacy["images_per_s"],
        "ratio_first_epoch": tfdata["first_epoch_images_per_s"] / legacy["first_epoch_images_per_s"],
    }


def input_bound(pipeline: dict, training_rows: list[dict]) -> list[dict]:
    """Per model: does it consume images faster than each pipeline produces them?"""
    rows = []
    for row in training_rows:
        if row.get("res") != pipeline["res"] or "images_per_s" not in row:
            continue
        train = row["images_per_s"]
        out = {"model": row["model"], "res": row["res"], "train_images_per_s": train}
        for name in ("tfdata", "legacy"):
            rate = pipeline[name]["images_per_s"]
            out[f"{name}_images_per_s"] = rate
            out[f"{name}_headroom"] = rate / train  # < 1: the pipeline cannot keep the model busy
            out[f"input_bound_{name}"] = rate < train
        rows.append(out)
    return rows
