"""tf.data input pipelines: decode in parallel, turn upright (EXIF), resize, grey to RGB, cache, augment, prefetch.

Every pipeline yields RGB float32 on the 0-255 scale and one-hot labels; each model
normalises its own input. Evaluation pipelines never shuffle, never repeat and keep
the last partial batch, so every image is evaluated exactly once.

Training pipelines never shuffle images through a buffer (a buffer smaller than a
class-sorted split yields batches of one class): each epoch's order is a function of
(seed, phase, epoch) computed on indices (:func:`epoch_order`), and each batch is
gathered from the decoded images (kept in memory as uint8 when ``cache``, else decoded
again) and augmented with stateless random ops keyed by (seed, phase, epoch, batch). The
data of an epoch is therefore the same in every process, and a resumed run sees exactly
the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from fer_keras.config import DEFAULT_SEED
from fer_keras.data.augment import augment_batch
from fer_keras.data.legacy import make_legacy_dataset
from fer_keras.data.readers import ImageSet

AUTOTUNE = tf.data.AUTOTUNE


def _to_uint8(img: tf.Tensor) -> tf.Tensor:
    # Cached images stay uint8: a quarter of the memory of float32 at 224 px.
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def decode_bytes(data: tf.Tensor) -> tf.Tensor:
    """8-bit RGB exactly as PIL decodes it (``fer_keras.data.images.open_rgb``, used by the predictor, the
    paper's loader and data_prep): TensorFlow's default JPEG IDCT is the fast, inexact one (on FER2013's
    JPEGs 2 grey levels off PIL on average, up to 18), so JPEGs take the accurate integer IDCT."""
    return tf.cond(tf.io.is_jpeg(data),
                   lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                   lambda: tf.io.decode_image(data, channels=3, expand_animations=False))


def orient(img: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """``img`` turned upright by its EXIF ``orientation``, as ``ImageOps.exif_transpose`` turns it for the
    predictor (``open_rgb``): TensorFlow's decoders ignore the tag, so phone photos stored sideways would
    train sideways. Branch k is PIL's transpose for orientation k + 1; other values leave ``img`` as it is."""
    return tf.switch_case(tf.cast(orientation, tf.int32) - 1, [
        lambda: img,
        lambda: tf.image.flip_left_right(img),                # 2 FLIP_LEFT_RIGHT
        lambda: tf.image.rot90(img, 2),                       # 3 ROTATE_180
        lambda: tf.image.flip_up_down(img),                   # 4 FLIP_TOP_BOTTOM
        lambda: tf.image.transpose(img),                      # 5 TRANSPOSE
        lambda: tf.image.rot90(img, 3),                       # 6 ROTATE_270 (clockwise)
        lambda: tf.image.rot90(tf.image.transpose(img), 2),   # 7 TRANSVERSE
        lambda: tf.image.rot90(img, 1),                       # 8 ROTATE_90 (counter-clockwise)
    ], default=lambda: img)


def _decode(path: tf.Tensor, orientation: tf.Tensor, res: int) -> tf.Tensor:
    img = orient(decode_bytes(tf.io.read_file(path)), orientation)
    img = tf.image.resize(img, (res, res), antialias=True)
    return tf.ensure_shape(_to_uint8(img), (res, res, 3))


def _pixels_to_rgb(img: tf.Tensor, res: int) -> tf.Tensor:
    img = tf.convert_to_tensor(img)
    if img.shape.rank == 2:
        img = img[..., None]
    img = _to_uint8(tf.image.resize(tf.cast(img, tf.float32), (res, res), antialias=True))
    return tf.image.grayscale_to_rgb(img) if img.shape[-1] == 1 else img


def _from_pixels(pixels: np.ndarray, res: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(pixels).map(lambda img: _pixels_to_rgb(img, res),
                                                          num_parallel_calls=AUTOTUNE)


def _paths(images: ImageSet) -> np.ndarray:
    return np.array(images.paths, dtype=object).astype(str)


def image_dataset(images: ImageSet, res: int) -> tf.data.Dataset:
    """Decoded (res, res, 3) uint8 images in file order, EXIF orientation applied."""
    if images.pixels is not None:
        return _from_pixels(images.pixels, res)
    files = tf.data.Dataset.from_tensor_slices((_paths(images), images.orientation()))
    return files.map(lambda p, o: _decode(p, o, res), num_parallel_calls=AUTOTUNE)


SAMPLINGS = ("shuffle", "weighted")


def epoch_order(labels: np.ndarray, seed: int, epoch: int, sampling: str = "shuffle", *, phase: int = 0
                ) -> np.ndarray:
    """Indices of the images of epoch ``epoch`` of training phase ``phase``, a pure function of
    (seed, phase, epoch): a second phase does not replay the first one's epochs.

    ``shuffle``: a uniformly random permutation of the whole split. ``weighted`` (Haider et
    al., Sensors 2023): ``len(labels)`` samples whose classes are drawn uniformly; each
    class is read as a stream of fresh random permutations of its images, so minority
    images are seen more often per epoch instead of weighing more in the loss.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    rng = np.random.default_rng([seed, phase, epoch])
    if sampling == "shuffle":
        return rng.permutation(len(labels))
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    draws = rng.integers(len(members), size=len(labels))
    order = np.empty(len(labels), dtype=np.int64)
    for c, index in enumerate(members):
        where = np.flatnonzero(draws == c)
        cycles = -(-len(where) // len(index))
        order[where] = rng.permuted(np.tile(index, (cycles, 1)), axis=1).ravel()[:len(where)]
    return order


def _labelled(images: ImageSet, res: int, cache: bool) -> tf.data.Dataset:
    labels = tf.data.Dataset.from_tensor_slices(tf.one_hot(images.labels, len(images.class_names)))
    ds = tf.data.Dataset.zip((image_dataset(images, res), labels))
    return ds.cache() if cache else ds


def _gather(array: np.ndarray, index: tf.Tensor) -> tf.Tensor:
    # numpy_function reads the array in place: no second copy of it inside the graph.
    out = tf.numpy_function(lambda i: array[i], [index], tf.as_dtype(array.dtype), stateful=False)
    return tf.ensure_shape(out, (None, *array.shape[1:]))


def decode_all(images: ImageSet, res: int) -> np.ndarray:
    """Every image decoded once, (n, res, res, 3) uint8, filled chunk by chunk (no second copy)."""
    out = np.empty((len(images), res, res, 3), dtype=np.uint8)
    start = 0
    for chunk in image_dataset(images, res).batch(256).as_numpy_iterator():
        out[start:start + len(chunk)] = chunk
        start += len(chunk)
    return out


def _batch_loader(images: ImageSet, res: int, cache: bool) -> Callable[[tf.Tensor], tf.Tensor]:
    """index batch -> (b, res, res, 3) uint8 images."""
    if cache:
        decoded = decode_all(images, res)
        return lambda index: _gather(decoded, index)
    if images.pixels is not None:
        pixels = images.pixels
        return lambda index: tf.map_fn(lambda img: _pixels_to_rgb(img, res), _gather(pixels, index),
                                       fn_output_signature=tf.TensorSpec((res, res, 3), tf.uint8))
    paths, orientations = tf.constant(_paths(images)), tf.constant(images.orientation())
    return lambda index: tf.map_fn(lambda f: _decode(f[0], f[1], res),
                                   (tf.gather(paths, index), tf.gather(orientations, index)),
                                   fn_output_signature=tf.TensorSpec((res, res, 3), tf.uint8))


class TrainingData:
    """The training split as batches of consecutive epochs, each a pure function of (seed, phase, epoch).

    Decodes (and with ``cache`` keeps) the images once, so every phase of a run draws
    from the same copy. Memory: the uint8 images when cached, plus a few batches.
    """

    def __init__(self, images: ImageSet, res: int, batch: int, *, seed: int = DEFAULT_SEED, cache: bool = True,
                 augment: bool = True, sampling: str = "shuffle", erasing: float = 0.0):
        """``erasing``: random-erasing probability of the augmentation (:func:`augment_batch`; 0: off)."""
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.labels, self.seed, self.sampling, self.batch, self.augment = images.labels, seed, sampling, batch, augment
        self.erasing = erasing
        self.steps_per_epoch = math.ceil(len(images) / batch)
        self._onehot = np.eye(len(images.class_names), dtype=np.float32)[images.labels]
        self._load = _batch_loader(images, res, cache)

    def _order(self, phase: int, epoch: tf.Tensor) -> tf.Tensor:
        return tf.numpy_function(lambda e: epoch_order(self.labels, self.seed, int(e), self.sampling, phase=phase),
                                 [epoch], tf.int64, stateful=False)

    def _batch(self, phase_key: tf.Tensor, epoch: tf.Tensor, step: tf.Tensor, index: tf.Tensor):
        x = tf.cast(self._load(index), tf.float32)
        if self.augment:
            fold = tf.random.experimental.stateless_fold_in
            x = augment_batch(x, fold(fold(phase_key, epoch), step), erasing=self.erasing)
        return x, _gather(self._onehot, index)

    def epochs(self, first: int = 0, count: int | None = 1, *, phase: int = 0) -> tf.data.Dataset:
        """Batched (images, one-hot labels) of epochs ``first`` .. ``first + count - 1`` of ``phase``
        (endless when ``count`` is None), ``steps_per_epoch`` batches each; an epoch's last batch may
        be partial."""
        epochs = tf.data.Dataset.range(first, first + count) if count is not None else tf.data.Dataset.counter(first)
        batches = epochs.flat_map(lambda e: tf.data.Dataset.from_tensor_slices(self._order(phase, e))
                                  .batch(self.batch).enumerate().map(lambda step, index: (e, step, index)))
        phase_key = tf.random.experimental.stateless_fold_in(tf.constant([self.seed, 0], tf.int64), phase)
        return batches.map(lambda e, step, index: self._batch(phase_key, e, step, index),
                           num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def make_dataset(images: ImageSet, res: int, batch: int, *, training: bool, seed: int = DEFAULT_SEED,
                 cache: bool = True, sampling: str = "shuffle") -> tf.data.Dataset:
    """Batched (images, one-hot labels); one epoch (epoch 0), shuffled and augmented when ``training``.

    ``sampling="weighted"`` (training only) draws classes uniformly, see :func:`epoch_order`.
    Training runs use :class:`TrainingData` directly, to resume at any epoch.
    """
    if training:
        return TrainingData(images, res, batch, seed=seed, cache=cache, sampling=sampling).epochs()
    ds = _labelled(images, res, cache).batch(batch)
    return ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


PIPELINES = ("tfdata", "legacy")


def eval_dataset(images: ImageSet, res: int, batch: int, *, pipeline: str, cache: bool = False) -> tf.data.Dataset:
    """Every image once, in order, loaded and resized the way the run's training ``pipeline`` loads them.

    The one place that decides it: a ``legacy`` run was trained on PIL nearest-neighbour
    resizes, a ``tfdata`` run on antialiased ones; scoring a model on the other kind shifts
    its accuracy for no reason the run can show.
    """
    if pipeline == "legacy":
        return make_legacy_dataset(images, res, batch, training=False)
    if pipeline == "tfdata":
        return make_dataset(images, res, batch, training=False, cache=cache)
    raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
