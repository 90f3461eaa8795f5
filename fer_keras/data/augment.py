"""The protocol's training augmentation, as Keras preprocessing layers run inside tf.data.

ImageDataGenerator(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
zoom_range=0.2, horizontal_flip=True) with its default 'nearest' fill. Differences from
the legacy generator (documented in the README): transforms are applied per batch on
the tensor graph with bilinear sampling; the zoom draws height and width factors
independently in [0.8, 1.2] like the generator does.
"""

from __future__ import annotations

import keras

ROTATION_DEGREES = 20
SHIFT = 0.2
ZOOM = 0.2


def protocol_augmentation(seed: int | None = None) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.RandomRotation(ROTATION_DEGREES / 360.0, fill_mode="nearest", seed=seed),
            keras.layers.RandomTranslation(SHIFT, SHIFT, fill_mode="nearest", seed=seed),
            keras.layers.RandomZoom((-ZOOM, ZOOM), (-ZOOM, ZOOM), fill_mode="nearest", seed=seed),
            keras.layers.RandomFlip("horizontal", seed=seed),
        ],
        name="protocol_augmentation",
    )
