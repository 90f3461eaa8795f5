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
  with the converter's reason, or for some ops (ROUND, CUMSUM, SUB...) gets that op in
  float between a dequantize and a quantize step: :func:`float_ops` lists such ops.
- ``int8_float_softmax``: the same, except the final softmax, which runs in float on the
  dequantized int8 logits. int8 probabilities come in steps of 1/256; a model whose top
  classes are closer than that (an unsure or collapsed model) gets ties there, and argmax
  then picks the first tied class. Float softmax keeps the ranking at no measurable cost.
  (Uses TensorFlow's experimental QuantizationDebugger to deny-list the SOFTMAX op.)

A model that histogram-equalises its input (``preprocessing.has_equalized_input``) keeps that
block in float32 in both int8 variants: quantized to 8 bits, its pixel counts (up to h x w)
and level lookup come out wrong by up to 181 levels, and the built-in model's int8 file agreed
with its float self on the top class of 94.3 % of 1,000 FER2013 test images, against 99.3 % with
the equalisation in float. The ops from the input up to the
equalised image are deny-listed by name (the same debugger), the image is quantized once after
them (levels 0-255 at scale 1: exactly), and every layer of the model proper is int8 as before.
Such a file is not full-integer: :func:`float_ops` lists what in a file computes in float.
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

    from fer_keras.models.preprocessing import has_equalized_input

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
        equalized = has_equalized_input(model)
        if quant == "int8_float_softmax" or equalized:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            ops = ["SOFTMAX"] if quant == "int8_float_softmax" else None
            options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=ops)
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=gen,
                                                                 debug_options=options)
            if equalized:  # the nodes are named in the calibrated model, which the debugger makes first
                debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_ops=ops, denylisted_nodes=equalisation_nodes(debugger.calibrated_model))
            content = debugger.get_nondebug_quantized_model()
            _check_layers_quantized(content, softmax=quant == "int8_float_softmax")
            return content
    return converter.convert()


LAYER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX")  # not BATCH_MATMUL: the histogram is one


def _check_layers_quantized(content: bytes, *, softmax: bool) -> None:
    """Refuse an int8 file whose model layers fell back to float: the float island (equalisation, softmax)
    admits float builtins, which would otherwise also take any layer the int8 kernels lack, silently."""
    allowed = {"SOFTMAX"} if softmax else set()
    layers = [op for op in float_ops(content) if op in LAYER_OPS and op not in allowed]
    if layers:
        raise ValueError(f"int8 conversion left model layers in float32: {', '.join(dict.fromkeys(layers))}")


def _graph(content: bytes):
    """The main subgraph of a TFLite flatbuffer and its op names (``CONV_2D``...)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    return graph, [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in graph.operators]


def equalisation_nodes(content: bytes) -> list[str]:
    """The output tensor names of the ops that compute a model's input equalisation in the (float or
    calibrated) TFLite file ``content``: every op the equalised image depends on. The equalised image is the
    first tensor after the last ONE_HOT through which all of the model's data flows (the only live tensor
    there); a grey model's channel mean before it is included, its repeat to three channels after it is not."""
    graph, kinds = _graph(content)
    ops = graph.operators
    if "ONE_HOT" not in kinds:
        raise ValueError("no histogram equalisation (ONE_HOT op) in this model's converted graph")
    last_one_hot = len(kinds) - 1 - kinds[::-1].index("ONE_HOT")
    last_use: dict[int, int] = {}
    for k, op in enumerate(ops):
        for t in op.inputs:
            last_use[int(t)] = k
    for t in graph.outputs:
        last_use[int(t)] = len(ops)
    live = {int(t) for t in graph.inputs}
    producer: dict[int, int] = {}
    cut, cut_op = None, -1
    for k, op in enumerate(ops):  # a TFLite file lists its ops in execution order
        producer.update((int(t), k) for t in op.outputs)
        live = {t for t in live | {int(t) for t in op.outputs} if last_use.get(t, -1) > k}
        if k >= last_one_hot and len(live) == 1:
            cut, cut_op = next(iter(live)), k
            break
    if cut is None:
        raise ValueError("found no single equalised image after the equalisation's ops in the converted graph")
    if layers := {kinds[k] for k in range(cut_op + 1)} & set(LAYER_OPS):
        raise ValueError(f"the equalisation is not at the model's input: {sorted(layers)} before its image")
    island, pending = set(), [cut]
    while pending:
        k = producer.get(pending.pop())
        if k is not None and k not in island:
            island.add(k)
            pending.extend(int(t) for t in ops[k].inputs if t >= 0)
    return [graph.tensors[int(ops[k].outputs[0])].name.decode() for k in sorted(island)]


def float_ops(content: bytes) -> list[str]:
    """The ops of a TFLite file that compute in float32, in order (quantize and dequantize steps left out):
    none in a full-integer int8 file, the equalisation of an equalising model's int8 file."""
    graph, kinds = _graph(content)
    float32 = 0  # tflite TensorType.FLOAT32
    return [kind for kind, op in zip(kinds, graph.operators, strict=True) if kind not in ("QUANTIZE", "DEQUANTIZE")
            and any(graph.tensors[int(t)].type == float32 for t in op.outputs)]


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
