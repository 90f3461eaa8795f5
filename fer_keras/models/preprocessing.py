"""Input normalisation inside every model, built from Keras' own layers.

The pipeline always feeds RGB on the 0-255 scale; each model's first layers turn that
into what its weights were trained on, so evaluation can never normalise differently
from training. Only stock Keras pieces sit at the input (``ops.flip`` for BGR order and
one ``Rescaling`` with per-channel scale and offset), so a saved model loads with plain
``keras.models.load_model`` in a process that never imports fer_keras. The
``Rescaling`` layer is named ``preprocess_<mode>``: :func:`preprocessing_mode` reads the
mode back from any built or loaded model.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

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
#: Name prefix of the layer that normalises: ``preprocess_<mode>``.
LAYER_PREFIX = "preprocess_"


def _check(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; known: {', '.join(MODES)}")


def scale_and_offset(mode: str) -> tuple[float | list[float], float | list[float]]:
    """``x * scale + offset`` equal to ``(x * s - mean) / std``: per channel where channels differ."""
    _check(mode)
    _, s, mean, std = _MODES[mode]
    mean_a = np.asarray(mean if mean is not None else (0.0,) * 3, dtype="float64")
    std_a = np.asarray(std if std is not None else (1.0,) * 3, dtype="float64")
    scale, offset = s / std_a, -mean_a / std_a

    def compact(v: np.ndarray) -> float | list[float]:
        # A scalar when every channel agrees keeps the saved config short and readable.
        return float(v[0]) if np.all(v == v[0]) else [float(c) for c in v]

    return compact(scale), compact(offset)


def normalise(x, mode: str = "rescale"):
    """Apply ``mode`` to a 0-255 RGB tensor with stock Keras ops only (see the module docstring)."""
    _check(mode)
    if _MODES[mode][0] == "bgr":
        x = ops.flip(x, axis=-1)
    scale, offset = scale_and_offset(mode)
    return layers.Rescaling(scale, offset, name=f"{LAYER_PREFIX}{mode}")(x)


def equalize_histogram(x):
    """Histogram-equalise each image and channel of a 0-255 batch ``(batch, h, w, c)`` (OpenCV's
    ``equalizeHist``: level -> 255 (cdf - cdf_min) / (n - cdf_min), cdf counting pixels at or below the level;
    a one-level image is left as it is). FER2013's faces were equalised before release (per-image mean
    131 +/- 10, standard deviation 77 +/- 7 on the 0-255 scale) and in-the-wild photos are not (BTFER-48 dev:
    133 +/- 46 and 54 +/- 17), so a model that equalises its input meets both the same way. Static shapes and
    stock ops only, so it saves, reloads in safe mode and converts to TFLite."""
    h, w, c = x.shape[1:]
    n = h * w
    levels = ops.cast(ops.clip(ops.round(x), 0, 255), "int32")
    levels = ops.reshape(ops.transpose(levels, (0, 3, 1, 2)), (-1, n))  # one row per image channel
    # The 256-bin histogram as one batched matmul of the one-hot high and low 4 bits (level = 16 hi + lo):
    # rows x n x 16 floats twice instead of rows x n x 256, 14x faster than one-hot counts, exact.
    high = ops.one_hot(levels // 16, 16, dtype="float32")
    low_bits = ops.one_hot(levels % 16, 16, dtype="float32")
    hist = ops.reshape(ops.matmul(ops.transpose(high, (0, 2, 1)), low_bits), (-1, 256))
    cdf = ops.cumsum(hist, axis=-1)
    low = ops.min(ops.where(cdf > 0, cdf, float(n)), axis=-1, keepdims=True)  # pixels at the darkest level
    lut = ops.round((cdf - low) / ops.maximum(n - low, 1.0) * 255.0)
    # lut[level] the same way: the lut's row for the high bits (a matmul), then the entry for the low bits.
    looked_up = ops.sum(ops.matmul(high, ops.reshape(lut, (-1, 16, 16))) * low_bits, axis=-1)
    out = ops.where(low < n, looked_up, ops.cast(levels, "float32"))
    return ops.transpose(ops.reshape(out, (-1, c, h, w)), (0, 2, 3, 1))


def adapt_input(model: keras.Model, *, grey: bool = False, equalize: bool = False) -> keras.Model:
    """``model`` with its RGB input turned grey (the mean of R, G and B in all three channels) and/or
    histogram-equalised (:func:`equalize_histogram`; the grey channel once, or each RGB channel) first, as a
    flat graph over the same layers (names and weights kept). A model trained on grey faces (FER2013) only
    ever trained the grey part of its first kernels; their colour part stays at its random start and would
    add noise to colour photos. Stock ``keras.ops`` only, so the file loads with plain Keras."""
    inputs = keras.Input(shape=model.input_shape[1:], name=model.inputs[0].name)
    x = inputs
    if grey:
        x = ops.mean(x, axis=-1, keepdims=True)
    if equalize:
        x = equalize_histogram(x)
    if grey:
        x = ops.repeat(x, 3, axis=-1)
    _rename_clashes(x, {op.name for op in model.operations})
    # Calls every layer of the graph again on the new tensor (what a functional model does when called),
    # which builds new nodes on the same layers instead of nesting the model as one layer.
    outputs = model._run_through_graph(x, operation_fn=lambda op: op)
    return keras.Model(inputs, outputs, name=model.name)


def _rename_clashes(tensor, taken: set[str]) -> None:
    """Give the new input operations behind ``tensor`` names the model does not use. A model loaded from a
    file keeps its operations' names ('mean', 'repeat') while this process names new ones from 'mean'
    again, and a functional model refuses two operations of one name."""
    pending, seen = [tensor], set()
    while pending:
        op, node_index, _ = pending.pop()._keras_history
        if id(op) in seen or isinstance(op, keras.layers.InputLayer):
            continue
        seen.add(id(op))
        base, k = op.name, 1
        while op.name in taken:
            op.name, k = f"{base}_input_{k}", k + 1
        taken.add(op.name)
        pending.extend(op._inbound_nodes[node_index].input_tensors)


def grey_input(model: keras.Model) -> keras.Model:
    """``model`` with grey input (:func:`adapt_input`)."""
    return adapt_input(model, grey=True)


def equalized_input(model: keras.Model) -> keras.Model:
    """``model`` with histogram-equalised input (:func:`adapt_input`), grey first when the model already
    averages its channels (its own averaging then sees three equal channels and changes nothing)."""
    return adapt_input(model, grey=has_grey_input(model), equalize=True)


def _input_operations(model: keras.Model) -> list[str]:
    """Type names of the stock ops (``keras.ops``) a model applies to its input before its first layer:
    what :func:`adapt_input` adds, recognisable in a file loaded without fer_keras."""
    names = []
    for op in model.operations:
        if isinstance(op, keras.layers.InputLayer):
            continue
        if isinstance(op, keras.layers.Layer):
            break
        names.append(type(op).__name__)
    return names


def has_grey_input(model: keras.Model) -> bool:
    """Whether ``model`` averages its input's channels first (:func:`adapt_input`)."""
    return _input_operations(model)[:1] == ["Mean"]


def has_equalized_input(model: keras.Model) -> bool:
    """Whether ``model`` histogram-equalises its input first (:func:`adapt_input`)."""
    return "OneHot" in _input_operations(model)


def preprocessing_mode(model: keras.Model) -> str | None:
    """The normalisation a model applies to its input, or None if it has no such layer."""
    for layer in model.layers:
        if isinstance(layer, Preprocess):
            return layer.mode
        if layer.name.startswith(LAYER_PREFIX) and layer.name[len(LAYER_PREFIX):] in _MODES:
            return layer.name[len(LAYER_PREFIX):]
        if isinstance(layer, keras.Model) and (found := preprocessing_mode(layer)):
            return found
    return None


@keras.saving.register_keras_serializable(package="fer_keras")
class Preprocess(keras.layers.Layer):
    """The custom normalisation layer of models saved before :func:`normalise`.

    Kept so their ``best.keras`` files still load (with fer_keras imported); new models
    never use it.
    """

    def __init__(self, mode: str = "rescale", **kwargs):
        super().__init__(**kwargs)
        _check(mode)
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
