"""The tf.data warp equals Keras' ImageDataGenerator.apply_transform, parameter set by parameter set."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fer_keras.data.augment import (
    ERASE_AREA,
    ERASE_RATIO,
    ROTATION_DEGREES,
    SHIFT,
    ZOOM,
    affine_params,
    augment_batch,
    erase_batch,
    idg_transform,
    warp,
)

IDG = pytest.importorskip("keras.src.legacy.preprocessing.image")


def smooth_image(h: int, w: int) -> np.ndarray:
    """Low-frequency 0-255 float image: bilinear resampling of it differs from scipy's only by rounding."""
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([127.5 + 100 * np.sin(2 * np.pi * (r / 40 + c / 60)),
                     127.5 + 100 * np.cos(2 * np.pi * (r / 50 - c / 35)),
                     255 * (r + 2 * c) / (h - 1 + 2 * (w - 1))], -1).astype(np.float32)


S = SHIFT * 48
CASES = [
    {"theta": 20}, {"theta": -20}, {"tx": S}, {"tx": -S}, {"ty": S}, {"ty": -S},
    {"zx": 0.8, "zy": 0.8}, {"zx": 1.2, "zy": 1.2}, {"zx": 0.8, "zy": 1.2},
    {"theta": 20, "tx": S}, {"theta": 20, "ty": -S},
    {"theta": 20, "tx": S, "ty": -S, "zx": 0.8, "zy": 1.2},
    {"theta": -20, "tx": -S, "ty": S, "zx": 1.2, "zy": 0.8},
]


@pytest.mark.parametrize("shape", [(48, 48), (30, 44)])
@pytest.mark.parametrize("params", CASES, ids=lambda p: ",".join(f"{k}={v:g}" for k, v in p.items()))
def test_transform_equals_image_data_generator(params, shape):
    # Shifts of 0.2 and zooms of 0.8 sample outside the image, so the nearest-edge fill is
    # compared too; scipy (mode nearest, order 1) and TF (NEAREST, BILINEAR) both clamp the
    # coordinate and interpolate, so borders agree to float32 rounding (about 1e-4): the README's
    # "within 1e-3 grey levels" is checked on the warp the pipeline runs.
    img = smooth_image(*shape)
    want = IDG.ImageDataGenerator().apply_transform(img, params)  # fill nearest, order 1 by default
    full = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "zx": 1.0, "zy": 1.0, **params}
    transform = idg_transform(**full, height=shape[0], width=shape[1], degrees=True)
    got = warp(tf.constant(img[None]), transform[None])[0].numpy()
    assert np.abs(got - want).max() < 1e-3


def _idg_params(t: np.ndarray, size: int) -> list[dict]:
    """ImageDataGenerator's (theta in degrees, tx, ty, zx, zy) of (n, 8) square-image transforms."""
    a = t[:, [0, 1, 3, 4]].reshape(-1, 2, 2)
    theta = np.arctan2(a[:, 1, 0], a[:, 0, 0])
    zx, zy = np.hypot(a[:, 0, 0], a[:, 1, 0]), np.hypot(a[:, 0, 1], a[:, 1, 1])
    centre = np.full(2, (size - 1) / 2)
    rotated = t[:, [2, 5]] - (centre - a @ centre)
    cos, sin = np.cos(theta), np.sin(theta)
    tx, ty = cos * rotated[:, 0] + sin * rotated[:, 1], -sin * rotated[:, 0] + cos * rotated[:, 1]
    return [{"theta": float(np.degrees(theta[i])), "tx": float(tx[i]), "ty": float(ty[i]),
             "zx": float(zx[i]), "zy": float(zy[i])} for i in range(len(t))]


def test_augment_batch_is_a_flip_then_the_generators_transform_of_its_drawn_parameters():
    """The pipeline's batch augmentation, keyed: each image equals ImageDataGenerator.apply_transform of
    the (possibly mirrored) image with the parameters drawn for it, within the README's 1e-3 grey levels."""
    n, size, key = 12, 48, tf.constant([9, 4], tf.int64)
    img = smooth_image(size, size)
    got = augment_batch(tf.constant(np.repeat(img[None], n, 0)), key).numpy()
    params = _idg_params(affine_params(n, size, size, key).numpy().astype(np.float64), size)
    idg, flipped = IDG.ImageDataGenerator(), []
    for i, p in enumerate(params):
        errors = [np.abs(got[i] - idg.apply_transform(src, p)).max() for src in (img, img[:, ::-1])]
        assert min(errors) < 1e-3, (i, p, errors)
        assert max(errors) > 1, "the mirrored and plain views differ, so the flip is identified"
        flipped.append(errors[1] < errors[0])
    assert 0 < sum(flipped) < n, "some images are mirrored, some not"
    assert max(abs(p["theta"]) for p in params) > 5 and max(abs(p["tx"]) for p in params) > 2


def test_radians_and_degrees_agree():
    a = idg_transform(20.0, 3.0, -2.0, 0.9, 1.1, 48, 48, degrees=True)
    b = idg_transform(20 * math.pi / 180, 3.0, -2.0, 0.9, 1.1, 48, 48)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_random_transforms_are_the_generators_composition_within_its_ranges():
    """Every drawn transform is C R S Z C^-1 with the protocol's ranges: undoing R recovers a
    shift within +-0.2 of the size (adding the shift unrotated would exceed that at 20 degrees)."""
    n, size = 512, 48
    t = affine_params(n, size, size, tf.constant([5, 0], tf.int64)).numpy().astype(np.float64)
    a = t[:, [0, 1, 3, 4]].reshape(n, 2, 2)
    theta = np.arctan2(a[:, 1, 0], a[:, 0, 0])
    zx, zy = np.hypot(a[:, 0, 0], a[:, 1, 0]), np.hypot(a[:, 0, 1], a[:, 1, 1])
    centre = np.full(2, (size - 1) / 2)
    rotated_shift = t[:, [2, 5]] - (centre - a @ centre)
    cos, sin = np.cos(theta), np.sin(theta)
    shift = np.stack([cos * rotated_shift[:, 0] + sin * rotated_shift[:, 1],
                      -sin * rotated_shift[:, 0] + cos * rotated_shift[:, 1]], 1)
    tol = 1e-3
    assert np.all(np.abs(np.degrees(theta)) <= ROTATION_DEGREES + tol)
    assert np.all((zx >= 1 - ZOOM - tol) & (zx <= 1 + ZOOM + tol) & (zy >= 1 - ZOOM - tol) & (zy <= 1 + ZOOM + tol))
    assert np.all(np.abs(shift) <= SHIFT * size + tol)
    assert np.abs(rotated_shift).max() > SHIFT * size + 0.5  # the shift really is rotated


def _erased_boxes(probability: float, n: int = 400, side: int = 24) -> tuple[np.ndarray, list]:
    """Erase a batch of constant 300-valued images (noise is drawn in [0, 255], so erased pixels show)."""
    images = tf.fill((n, side, side, 3), 300.0)
    out = erase_batch(images, tf.constant([7, 1], tf.int64), probability).numpy()
    return out, [np.argwhere(img[..., 0] < 300) for img in out]


def test_random_erasing_fills_one_rectangle_of_the_papers_size_and_shape_per_image():
    side = 24
    out, boxes = _erased_boxes(1.0, side=side)
    assert all(len(b) for b in boxes), "probability 1 erases every image"
    areas, ratios = [], []
    for img, b in zip(out, boxes, strict=True):
        (r0, c0), (r1, c1) = b.min(0), b.max(0) + 1
        assert len(b) == (r1 - r0) * (c1 - c0), "the erased pixels form one filled rectangle"
        assert (img[r0:r1, c0:c1] <= 255).all()
        assert not np.allclose(img[r0:r1, c0:c1, 0], img[r0, c0, 0]), "filled with noise, not one value"
        assert np.array_equal(img[r0:r1, c0:c1, 0], img[r0:r1, c0:c1, 2]), "grey noise, as the faces are grey"
        areas.append(len(b) / side**2)
        ratios.append((r1 - r0) / (c1 - c0))
    # rounding to whole pixels and clipping at the border widen the drawn ranges a little
    assert ERASE_AREA[0] / 2 <= min(areas) and max(areas) <= ERASE_AREA[1] * 1.3
    assert np.median(areas) > 0.1 and min(ratios) < 1 < max(ratios)
    assert ERASE_RATIO[0] / 2 <= min(ratios) and max(ratios) <= ERASE_RATIO[1] * 2


def test_random_erasing_probability_and_off_by_default():
    _, half = _erased_boxes(0.5)
    assert 0.4 < np.mean([len(b) > 0 for b in half]) < 0.6
    _, none = _erased_boxes(0.0)
    assert not any(len(b) for b in none)
    images = tf.random.uniform((8, 16, 16, 3), 0, 255, seed=1)
    key = tf.constant([3, 0], tf.int64)
    plain, erased = augment_batch(images, key), augment_batch(images, key, erasing=1.0)
    assert not np.array_equal(plain.numpy(), erased.numpy())
    assert np.array_equal(erased.numpy(), augment_batch(images, key, erasing=1.0).numpy()), "keyed, repeatable"


def test_warp_keeps_the_static_shape_and_erasing_needs_none():
    """The warp's raw op forgot the static height and width of a batch of unknown size (which erasing after
    it once needed); erasing in a graph whose batches have no static size gives what it gives eagerly."""
    images, key = tf.random.uniform((4, 20, 20, 1), 0, 255, seed=2), tf.constant([5, 2], tf.int64)

    def warped(x: tf.Tensor) -> tf.Tensor:
        return warp(x, affine_params(tf.shape(x)[0], 20, 20, key))

    traced = tf.function(warped).get_concrete_function(tf.TensorSpec((None, 20, 20, 1), tf.float32))
    assert traced.output_shapes.as_list() == [None, 20, 20, 1]
    spec = tf.TensorSpec((None, None, None, 1), tf.float32)
    graph = tf.function(lambda x: erase_batch(x, key, 1.0), input_signature=[spec])
    assert np.array_equal(graph(images).numpy(), erase_batch(images, key, 1.0).numpy())
