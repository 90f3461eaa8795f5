"""The protocol's training augmentation, run inside tf.data as one affine warp per image.

ImageDataGenerator(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
zoom_range=0.2, horizontal_flip=True, fill_mode='nearest'): like the generator, the
rotation, shift and zoom (height and width factors drawn independently in [0.8, 1.2])
are composed into ONE transform and the image is resampled once, bilinearly, with
nearest-edge fill. Chaining Keras' RandomRotation/RandomTranslation/RandomZoom layers
instead resamples three times and blurs small 48 px faces noticeably.

Every draw is a stateless random op keyed by ``key`` (the training pipeline derives it
from the run's seed, the epoch and the batch's position), so a batch's augmentation is
the same in every process and whatever order tf.data's parallel map runs batches in.
"""

from __future__ import annotations

import math

import tensorflow as tf

ROTATION_DEGREES = 20
SHIFT = 0.2
ZOOM = 0.2


def draw_key(key: tf.Tensor, stream: int) -> tf.Tensor:
    """The stateless seed of one independent draw (``stream``) under ``key``."""
    return tf.random.experimental.stateless_fold_in(key, stream)


def affine_params(batch: tf.Tensor, height: int, width: int, key: tf.Tensor) -> tf.Tensor:
    """(batch, 8) projective transforms mapping output pixels to input pixels; ``key``: shape-(2,) seed."""
    u = lambda lo, hi, s: tf.random.stateless_uniform([batch], draw_key(key, s), lo, hi)  # noqa: E731
    theta = u(-ROTATION_DEGREES, ROTATION_DEGREES, 1) * (math.pi / 180)
    tx, ty = u(-SHIFT, SHIFT, 2) * width, u(-SHIFT, SHIFT, 3) * height
    zx, zy = u(1 - ZOOM, 1 + ZOOM, 4), u(1 - ZOOM, 1 + ZOOM, 5)
    cos, sin = tf.cos(theta), tf.sin(theta)
    a00, a01, a10, a11 = cos * zx, -sin * zy, sin * zx, cos * zy  # rotation @ zoom
    cx, cy = (width - 1) / 2, (height - 1) / 2
    off_x = cx - (a00 * cx + a01 * cy) + tx
    off_y = cy - (a10 * cx + a11 * cy) + ty
    zeros = tf.zeros_like(cos)
    return tf.stack([a00, a01, off_x, a10, a11, off_y, zeros, zeros], axis=1)


def augment_batch(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Randomly flip, rotate, shift and zoom a float batch (b, h, w, c); ``key``: shape-(2,) seed."""
    shape = tf.shape(images)
    b, h, w = shape[0], images.shape[1], images.shape[2]
    flip = tf.random.stateless_uniform([b, 1, 1, 1], draw_key(key, 6)) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=affine_params(b, h, w, key), output_shape=tf.stack([h, w]),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST",
    )
