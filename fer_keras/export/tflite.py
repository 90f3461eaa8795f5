"""TensorFlow Lite conversion for edge devices (PROTOCOL.md, 'Deployment', paper section 4.7).

Three variants, all with float32 input (0-255 RGB, like every model here) and float32
output (class probabilities), so a device feeds them exactly what it feeds the Keras model:

- ``none`` (float32): a plain conversion; the reference for the other two.
- ``float16``: weights stored as float16 (half the file), dequantised at load time on CPUs
  without float16 arithmetic.
- ``int8``: full-integer quantization, every op restricted to the int8 builtins
  (``TFLITE_BUILTINS_INT8``), calibrated on a representative sample of the run's own
  training images; a quantize op at the input and a dequantize op at the output keep
  the float interface. A model with an op that has no int8 kernel fails to convert,
  with the converter's reason, instead of silently falling back to float.
- ``int8_float_softmax``: the same, except the final softmax, which runs in float on the
  dequantized int8 logits. int8 probabilities come in steps of 1/256; a model whose top
  classes are closer than that (an unsure or collapsed model) gets ties there, and argmax
  then picks the first tied class. Float softmax keeps the ranking at no measurable cost.
  (Uses TensorFlow's experimental QuantizationDebugger to deny-list the SOFTMAX op.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from fer_keras.console import tensorflow_chatter_hidden

QUANTS = ("none", "float16", "int8", "int8_float_softmax")
#: File tag per quantization: ``model_<tag>.tflite`` and ``export_<tag>.json``.
TAGS = {"none": "float32", "float16": "float16", "int8": "int8", "int8_float_softmax": "int8_float_softmax"}


def primary_output(outputs):
    """The class probabilities of a model's output (multi-output models: 'predictions' or the first)."""
    if isinstance(outputs, dict):
        return outputs["predictions"] if "predictions" in outputs else next(iter(outputs.values()))
    if isinstance(outputs, list | tuple):
        return outputs[0]
    return outputs


def serving_function(model, res: int):
    """A traced ``images -> probabilities`` function with a free batch dimension."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, res, res, 3], tf.float32, name="image")
    return tf.function(lambda x: primary_output(model(x, training=False)), input_signature=[spec])


def single_output(model):
    """``model`` itself, or a view of it returning only its class probabilities."""
    import keras

    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, primary_output(model.output), name=f"{model.name}_probs")


def convert(model, res: int, quant: str,
            representative: Callable[[], Iterable[np.ndarray]] | None = None) -> bytes:
    """The TFLite flatbuffer of ``model`` quantized as ``quant`` (see the module docstring)."""
    with tensorflow_chatter_hidden():
        return _convert(model, res, quant, representative)


def _convert(model, res: int, quant: str, representative: Callable[[], Iterable[np.ndarray]] | None) -> bytes:
    import tensorflow as tf

    if quant not in QUANTS:
        raise ValueError(f"quant must be one of {QUANTS}, got {quant!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(single_output(model))
    if quant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quant.startswith("int8"):
        if representative is None:
            raise ValueError("int8 quantization needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

        def gen() -> Iterator[list[np.ndarray]]:
            for img in representative():
                yield [np.asarray(img, dtype=np.float32).reshape(1, res, res, 3)]

        converter.representative_dataset = gen
        if quant == "int8_float_softmax":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["SOFTMAX"])
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=gen,
                                                                 debug_options=options)
            return debugger.get_nondebug_quantized_model()
    return converter.convert()


def _interpreter_class():
    # LiteRT is TFLite's successor; tf.lite.Interpreter is deprecated but still ships in TF 2.21.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter


def interpreter_name() -> str:
    cls = _interpreter_class()
    return f"{cls.__module__}.{cls.__name__}"


class TFLiteModel:
    """A converted model in the TFLite interpreter, fed float32 batches of any size."""

    def __init__(self, content: bytes, threads: int | None = None):
        self.threads = threads or os.cpu_count() or 1
        with tensorflow_chatter_hidden():
            self.interpreter = _interpreter_class()(model_content=content, num_threads=self.threads)
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._batch = None

    def _ensure_batch(self, batch: int) -> None:
        if batch != self._batch:
            shape = list(self.interpreter.get_input_details()[0]["shape"])
            self.interpreter.resize_tensor_input(self._input, [batch, *shape[1:]], strict=False)
            with tensorflow_chatter_hidden():  # the first allocation announces its XNNPACK delegate
                self.interpreter.allocate_tensors()
            self._batch = batch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for one batch of (b, res, res, 3) 0-255 float images."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        self._ensure_batch(len(images))
        self.interpreter.set_tensor(self._input, images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()

    def input_output_types(self) -> tuple[str, str]:
        i = self.interpreter.get_input_details()[0]["dtype"]
        o = self.interpreter.get_output_details()[0]["dtype"]
        return np.dtype(i).name, np.dtype(o).name
