"""The protocol's training augmentation, run inside tf.data as one affine warp per image.

ImageDataGenerator(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
zoom_range=0.2, horizontal_flip=True, fill_mode='nearest'): like the generator, the
rotation, shift and zoom (height and width factors drawn independently in [0.8, 1.2])
are composed into ONE transform and the image is resampled once, bilinearly, with
nearest-edge fill. Chaining Keras' RandomRotation/RandomTranslation/RandomZoom layers
instead resamples three times and blurs small 48 px faces noticeably. The transform is
built exactly as the generator's ``apply_affine_transform`` builds it (:func:`idg_transform`).
The flip comes before the warp here and after it in the generator: the same distribution,
as the rotation and shift ranges are symmetric.

Random erasing (Zhong et al. 2020, "Random Erasing Data Augmentation", AAAI; ``erasing`` > 0)
is the fast recipe's, not the protocol's: after the warp, with that probability per image, one
rectangle covering 2-33 % of the image at an aspect ratio in [0.3, 3.3] is filled with uniform
grey noise (one value per pixel for all channels: the faces are grey, and it costs a third), so
the model cannot lean on any one region (an eye, the mouth) alone.

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

Param = tf.Tensor | float  # one value, or one per image


def draw_key(key: tf.Tensor, stream: int) -> tf.Tensor:
    """The stateless seed of one independent draw (``stream``) under ``key``."""
    return tf.random.experimental.stateless_fold_in(key, stream)


def affine_params(batch: tf.Tensor, height: int, width: int, key: tf.Tensor) -> tf.Tensor:
    """(batch, 8) projective transforms mapping output pixels to input pixels; ``key``: shape-(2,) seed."""
    u = lambda lo, hi, s: tf.random.stateless_uniform([batch], draw_key(key, s), lo, hi)  # noqa: E731
    theta = u(-ROTATION_DEGREES, ROTATION_DEGREES, 1) * (math.pi / 180)
    tx, ty = u(-SHIFT, SHIFT, 2) * width, u(-SHIFT, SHIFT, 3) * height
    zx, zy = u(1 - ZOOM, 1 + ZOOM, 4), u(1 - ZOOM, 1 + ZOOM, 5)
    return idg_transform(theta, tx, ty, zx, zy, height, width)


def idg_transform(theta: Param, tx: Param, ty: Param, zx: Param, zy: Param, height: int, width: int, *,
                  degrees: bool = False) -> tf.Tensor:
    """(..., 8) projective transform(s) that ImageDataGenerator.apply_transform would apply.

    The legacy generator maps output to input pixels through
    C @ R(theta) @ S(tx, ty) @ Z(zx, zy) @ C^-1 in (x = column, y = row) coordinates, so the
    shift is rotated with the image (it is not added after the rotation). Like the
    generator: ``tx`` moves along columns and ``ty`` along rows (whatever the names of the
    ranges they are drawn from), a positive ``theta`` turns the picture counter-clockwise
    on screen, and the centre C is ((height - 1) / 2, (width - 1) / 2) in (x, y), which is
    the true centre only for square images, the only ones this suite feeds it.
    """
    theta, tx, ty, zx, zy = (tf.cast(v, tf.float32) for v in (theta, tx, ty, zx, zy))
    if degrees:
        theta = theta * (math.pi / 180)
    cos, sin = tf.cos(theta), tf.sin(theta)
    a00, a01, a10, a11 = cos * zx, -sin * zy, sin * zx, cos * zy  # R @ Z
    ox, oy = (height - 1) / 2, (width - 1) / 2  # the generator's centre, (x, y) = (h, w) order
    off_x = ox - (a00 * ox + a01 * oy) + cos * tx - sin * ty  # C (R S Z) C^-1: R @ (tx, ty)
    off_y = oy - (a10 * ox + a11 * oy) + sin * tx + cos * ty
    zeros = tf.zeros_like(a00)
    return tf.stack([a00, a01, off_x, a10, a11, off_y, zeros, zeros], axis=-1)


def warp(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    """Resample a float batch (b, h, w, c) once through (b, 8) transforms: bilinear, nearest-edge fill."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST",
    )
    return tf.ensure_shape(out, images.shape)  # the raw op forgets the static shape


ERASE_AREA = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)


def erase_batch(images: tf.Tensor, key: tf.Tensor, probability: float) -> tf.Tensor:
    """With ``probability`` per image, fill one random rectangle of a float [0, 255] batch with grey noise."""
    shape = tf.shape(images)
    b, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    u = lambda s, lo=0.0, hi=1.0: tf.random.stateless_uniform([b], draw_key(key, s), lo, hi)  # noqa: E731
    area = u(11, *ERASE_AREA) * (h * w)
    ratio = tf.exp(u(12, *(math.log(r) for r in ERASE_RATIO)))
    eh = tf.minimum(tf.round(tf.sqrt(area * ratio)), h)
    ew = tf.minimum(tf.round(tf.sqrt(area / ratio)), w)
    top, left = tf.floor(u(13) * (h - eh + 1)), tf.floor(u(14) * (w - ew + 1))
    rows, cols = tf.range(shape[1], dtype=tf.float32), tf.range(shape[2], dtype=tf.float32)
    inside_rows = (rows[None] >= top[:, None]) & (rows[None] < (top + eh)[:, None])
    inside_cols = (cols[None] >= left[:, None]) & (cols[None] < (left + ew)[:, None])
    erased = (u(15) < probability)[:, None, None] & inside_rows[:, :, None] & inside_cols[:, None, :]
    noise = tf.random.stateless_uniform(tf.concat([shape[:3], [1]], 0), draw_key(key, 16), 0.0, 255.0)
    return tf.where(erased[..., None], noise, images)


def augment_batch(images: tf.Tensor, key: tf.Tensor, *, erasing: float = 0.0) -> tf.Tensor:
    """Randomly flip, rotate, shift and zoom a float batch (b, h, w, c), then erase a rectangle with
    probability ``erasing`` (0: the protocol, off); ``key``: shape-(2,) seed."""
    shape = tf.shape(images)
    b, h, w = shape[0], images.shape[1], images.shape[2]
    flip = tf.random.stateless_uniform([b, 1, 1, 1], draw_key(key, 6)) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    images = warp(images, affine_params(b, h, w, key))
    return erase_batch(images, key, erasing) if erasing > 0 else images
