"""The paper's own input pipeline, reproduced with Keras' ImageDataGenerator where it still exists.

Keras 3 dropped ImageDataGenerator from its public API; the private
``keras.src.legacy`` copy still runs on the stack this suite tests (TF 2.21 / Keras 3.15).
This mode loads images the way ``flow_from_directory`` did (PIL, nearest-neighbour
resize to RES) and applies ``random_transform`` image by image, but keeps the suite's
rules: canonical class order, EXIF orientation applied (as the predictor applies it;
``flow_from_directory`` ignored it), 0-255 output (the model rescales), every image once at
evaluation, and the same loader for evaluation as for training (see
``fer_keras.data.pipeline.eval_dataset``). Each training epoch draws its order and
augmentation from (seed, phase, epoch), so a resumed run, whose stream starts at the
epoch it stopped in, continues as an uninterrupted one would, and a second phase does
not replay the first one's draws. If a future Keras removes the private module this
mode fails with a message, and the default ``tfdata`` pipeline still works.
"""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf
from PIL import Image

from fer_keras.config import DEFAULT_SEED
from fer_keras.data.augment import ROTATION_DEGREES, SHIFT, ZOOM
from fer_keras.data.images import upright
from fer_keras.data.readers import ImageSet


def _generator():
    try:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    except ImportError as err:  # pragma: no cover - depends on the installed Keras
        raise RuntimeError(
            "pipeline 'legacy' needs keras.src.legacy.preprocessing.image.ImageDataGenerator, "
            "which this Keras version no longer ships; use pipeline 'tfdata'"
        ) from err
    return ImageDataGenerator(rotation_range=ROTATION_DEGREES, width_shift_range=SHIFT,
                              height_shift_range=SHIFT, zoom_range=ZOOM, horizontal_flip=True,
                              fill_mode="nearest")


def _load(images: ImageSet, i: int, res: int) -> np.ndarray:
    if images.pixels is not None:
        img = Image.fromarray(images.pixels[i])
    else:
        img = upright(Image.open(images.paths[i]))
    img = img.convert("RGB")
    if img.size != (res, res):
        img = img.resize((res, res), Image.NEAREST)  # flow_from_directory's default interpolation
    return np.asarray(img, dtype=np.float32)


def load_images(images: ImageSet, index: np.ndarray, res: int) -> np.ndarray:
    """(len(index), res, res, 3) float32 0-255, loaded as flow_from_directory loads them."""
    return np.stack([_load(images, i, res) for i in index])


def make_legacy_dataset(images: ImageSet, res: int, batch: int, *, training: bool, seed: int = DEFAULT_SEED,
                        phase: int = 0, first_epoch: int = 0, epochs: int | None = 1) -> tf.data.Dataset:
    """Batched (images, one-hot labels) produced by ImageDataGenerator.random_transform.

    Training: epochs ``first_epoch`` .. ``first_epoch + epochs - 1`` of phase ``phase`` (endless
    when ``epochs`` is None), each shuffled and augmented by a generator seeded with (seed, phase, epoch).
    """
    gen = _generator() if training else None
    n, k = len(images), len(images.class_names)
    onehot = np.eye(k, dtype=np.float32)[images.labels]
    count = epochs if training else 1

    def batches():
        for epoch in itertools.count(first_epoch) if count is None else range(first_epoch, first_epoch + count):
            rng = np.random.default_rng([seed, phase, epoch])
            order = rng.permutation(n) if training else np.arange(n)
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                x = load_images(images, idx, res)
                if gen is not None:
                    x = np.stack([gen.random_transform(img, seed=int(rng.integers(2**31))) for img in x])
                yield x, onehot[idx]

    spec = (tf.TensorSpec((None, res, res, 3), tf.float32), tf.TensorSpec((None, k), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
    if count is None:
        return ds.prefetch(2)
    # A known length lets Keras run every epoch to the end instead of guessing.
    return ds.apply(tf.data.experimental.assert_cardinality(count * -(-n // batch))).prefetch(2)
