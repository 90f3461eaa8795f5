"""Input normalisation as a layer, so it is saved inside every model.

The pipeline always feeds RGB on the 0-255 scale; each model's first layer turns that
into what its weights were trained on. Evaluation can therefore never normalise
differently from training.
"""

from __future__ import annotations

import keras
from keras import ops

# mode -> (channel order, scale applied first, mean subtracted after scaling, std divided by)
_MODES: dict[str, tuple[str, float, tuple[float, ...] | None, tuple[float, ...] | None]] = {
    "none": ("rgb", 1.0, None, None),
    "rescale": ("rgb", 1 / 255.0, None, None),  # the protocol's ImageDataGenerator(rescale=1/255)
    # [-1, 1]: MobileNet, Inception, Xception, NASNet
    "tf": ("rgb", 1 / 127.5, (1.0, 1.0, 1.0), None),
    "torch": ("rgb", 1 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # DenseNet
    "caffe": ("bgr", 1.0, (103.939, 116.779, 123.68), None),  # VGG16/19, ResNet50 (ImageNet)
    "vggface_v1": ("bgr", 1.0, (93.5940, 104.7624, 129.1863), None),  # VGGFace VGG16
    "vggface_v2": ("bgr", 1.0, (91.4953, 103.8827, 131.0912), None),  # VGGFace2 ResNet50/SENet50
}
MODES = tuple(_MODES)


@keras.saving.register_keras_serializable(package="fer_keras")
class Preprocess(keras.layers.Layer):
    """Normalise 0-255 RGB input the way a model's weights expect."""

    def __init__(self, mode: str = "rescale", **kwargs):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode

    def call(self, x):
        order, scale, mean, std = _MODES[self.mode]
        x = ops.cast(x, self.compute_dtype)
        if order == "bgr":
            x = ops.flip(x, axis=-1)
        if scale != 1.0:
            x = x * scale
        if mean is not None:
            x = x - ops.convert_to_tensor(mean, dtype=x.dtype)
        if std is not None:
            x = x / ops.convert_to_tensor(std, dtype=x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
