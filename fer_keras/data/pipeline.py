"""tf.data input pipelines: decode in parallel, resize, grey to RGB, cache, augment, prefetch.

Every pipeline yields RGB float32 on the 0-255 scale and one-hot labels; each model
normalises its own input. Evaluation pipelines never shuffle, never repeat and keep
the last partial batch, so every image is evaluated exactly once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fer_keras.data.augment import augment_batch
from fer_keras.data.legacy import make_legacy_dataset
from fer_keras.data.readers import ImageSet

AUTOTUNE = tf.data.AUTOTUNE


def _to_uint8(img: tf.Tensor) -> tf.Tensor:
    # Cached images stay uint8: a quarter of the memory of float32 at 224 px.
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def _decode(path: tf.Tensor, res: int) -> tf.Tensor:
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    img = tf.image.resize(img, (res, res), antialias=True)
    return tf.ensure_shape(_to_uint8(img), (res, res, 3))


def _from_pixels(pixels: np.ndarray, res: int) -> tf.data.Dataset:
    def prep(img):
        img = tf.convert_to_tensor(img)
        if img.shape.rank == 2:
            img = img[..., None]
        img = _to_uint8(tf.image.resize(tf.cast(img, tf.float32), (res, res), antialias=True))
        return tf.image.grayscale_to_rgb(img) if img.shape[-1] == 1 else img

    return tf.data.Dataset.from_tensor_slices(pixels).map(prep, num_parallel_calls=AUTOTUNE)


def image_dataset(images: ImageSet, res: int) -> tf.data.Dataset:
    """Decoded (res, res, 3) uint8 images in file order."""
    if images.pixels is not None:
        return _from_pixels(images.pixels, res)
    paths = tf.data.Dataset.from_tensor_slices(np.array(images.paths, dtype=object).astype(str))
    return paths.map(lambda p: _decode(p, res), num_parallel_calls=AUTOTUNE)


SAMPLINGS = ("shuffle", "weighted")


def _labelled(images: ImageSet, res: int, cache: bool) -> tf.data.Dataset:
    labels = tf.data.Dataset.from_tensor_slices(tf.one_hot(images.labels, len(images.class_names)))
    ds = tf.data.Dataset.zip((image_dataset(images, res), labels))
    return ds.cache() if cache else ds


def class_balanced(images: ImageSet, res: int, *, seed: int = 42, cache: bool = True) -> tf.data.Dataset:
    """One epoch of ``len(images)`` samples drawn with every class equally likely.

    Weighted sampling (Haider et al., Sensors 2023): each class is an endlessly repeated,
    shuffled stream and a sample's class is drawn uniformly, so minority images are seen
    more often per epoch instead of weighing more in the loss.
    """
    streams = []
    for c in range(len(images.class_names)):
        index = np.flatnonzero(images.labels == c)
        if len(index):
            part = images.subset(index, f"{images.name}[{images.class_names[c]}]")
            streams.append(_labelled(part, res, cache).repeat().shuffle(min(len(index), 10_000), seed=seed + c))
    mixed = tf.data.Dataset.sample_from_datasets(streams, weights=[1 / len(streams)] * len(streams), seed=seed,
                                                 rerandomize_each_iteration=True)
    return mixed.take(len(images))


def make_dataset(images: ImageSet, res: int, batch: int, *, training: bool, seed: int = 42,
                 cache: bool = True, augment: bool | None = None, sampling: str = "shuffle") -> tf.data.Dataset:
    """Batched (images, one-hot labels); shuffled and augmented only when ``training``.

    ``sampling="weighted"`` (training only) draws classes uniformly, see :func:`class_balanced`.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if training and sampling == "weighted":
        ds = class_balanced(images, res, seed=seed, cache=cache)
    else:
        ds = _labelled(images, res, cache)
        if training:
            ds = ds.shuffle(min(len(images), 10_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    if training if augment is None else augment:
        ds = ds.map(lambda x, y: (augment_batch(x, seed), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


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
