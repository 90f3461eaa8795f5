"""The paper's own input pipeline, reproduced with Keras' ImageDataGenerator where it still exists.

Keras 3 dropped ImageDataGenerator from its public API; the private
``keras.src.legacy`` copy still runs on the stack this suite tests (TF 2.21 / Keras 3.15).
This mode loads images the way ``flow_from_directory`` did (PIL, nearest-neighbour
resize to RES) and applies ``random_transform`` image by image, but keeps the suite's
rules: canonical class order, 0-255 output (the model rescales), every image once at
evaluation, and the same loader for evaluation as for training (see
``fer_keras.data.pipeline.eval_dataset``). Each training pass draws its order and
augmentation from (seed, phase, epoch), told by an :class:`EpochClock` callback, so a run
resumed by BackupAndRestore continues with the epoch it stopped in. If a future Keras
removes the private module this mode fails with a message, and the default ``tfdata``
pipeline still works.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from fer_keras.data.augment import ROTATION_DEGREES, SHIFT, ZOOM
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
        img = Image.open(images.paths[i])
    img = img.convert("RGB")
    if img.size != (res, res):
        img = img.resize((res, res), Image.NEAREST)  # flow_from_directory's default interpolation
    return np.asarray(img, dtype=np.float32)


class EpochClock(keras.callbacks.Callback):
    """The (phase, epoch) a legacy training stream is in, taken from Keras rather than counted.

    Counting passes restarts at 0 when a run resumes; Keras' epoch index does not (BackupAndRestore
    restores it). ``phase_of`` numbers the fit calls of a run (phases done so far), so a second
    phase does not replay the first one's draws. Without a fit (benchmarks) the stream advances
    the epoch itself after every pass.
    """

    def __init__(self, phase_of: Callable[[], int] = lambda: 0):
        super().__init__()
        self.phase_of = phase_of
        self.phase = self.epoch = 0

    def on_train_begin(self, logs=None):
        self.phase = self.phase_of()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def take(self) -> tuple[int, int]:
        """The key of the pass starting now."""
        key = (self.phase, self.epoch)
        self.epoch += 1
        return key


def load_images(images: ImageSet, index: np.ndarray, res: int) -> np.ndarray:
    """(len(index), res, res, 3) float32 0-255, loaded as flow_from_directory loads them."""
    return np.stack([_load(images, i, res) for i in index])


def make_legacy_dataset(images: ImageSet, res: int, batch: int, *, training: bool, seed: int = 42,
                        clock: EpochClock | None = None) -> tf.data.Dataset:
    """Batched (images, one-hot labels) produced by ImageDataGenerator.random_transform.

    Training passes are keyed by (seed, phase, epoch) from ``clock`` (pass it to fit as a callback).
    """
    gen = _generator() if training else None
    clock = clock or EpochClock()
    n, k = len(images), len(images.class_names)
    onehot = np.eye(k, dtype=np.float32)[images.labels]

    def batches():
        rng = np.random.default_rng([seed, *clock.take()]) if training else None
        order = rng.permutation(n) if training else np.arange(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            x = load_images(images, idx, res)
            if gen is not None:
                x = np.stack([gen.random_transform(img, seed=int(rng.integers(2**31))) for img in x])
            yield x, onehot[idx]

    spec = (tf.TensorSpec((None, res, res, 3), tf.float32), tf.TensorSpec((None, k), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
    # A known length lets Keras run every epoch to the end instead of guessing.
    return ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch))).prefetch(2)
