"""Inference speed per model: Keras float32 against TFLite float32, float16 and int8.

Single-image latency (median and p95 over many calls, batch 1) is what a camera on an
edge device sees; batch throughput is what offline scoring sees. Keras runs through a
traced ``tf.function`` (what serving would do; eager calls add Python overhead). Models
carry random weights: speed does not depend on the values, and int8 calibration uses
random 0-255 images, which is enough to fix the quantization ranges for timing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from fer_keras.export.tflite import QUANTS, TAGS, TFLiteModel, convert, serving_function
from fer_keras.registry import build_model
from fer_keras.timing import summarise, time_calls

ROUNDS = 3


def _measure_round_robin(fns: dict, one: np.ndarray, many: np.ndarray, latency_repeats: int,
                         repeats: int) -> dict[str, dict]:
    """Time every format in turn, ``ROUNDS`` times over, so a load spike or an order effect
    (the first format measured after the conversions) does not land on one format only."""
    single = {k: [] for k in fns}
    batched = {k: [] for k in fns}
    for fn in fns.values():  # warm-up: tracing, interpreter allocation, packed weights
        fn(one), fn(many)
    per_round_single = max(1, -(-latency_repeats // ROUNDS))
    per_round_batch = max(1, -(-repeats // ROUNDS))
    for _ in range(ROUNDS):
        for key, fn in fns.items():
            single[key] += time_calls(lambda fn=fn: fn(one), repeats=per_round_single, warmup=2)
            batched[key] += time_calls(lambda fn=fn: fn(many), repeats=per_round_batch, warmup=1)
    return {k: {"single_image": summarise(single[k]), "batch": len(many),
                "batch_images_per_s": len(many) / float(np.median(batched[k])),
                "batch_timing": summarise(batched[k])} for k in fns}


def inference_benchmark(name: str, res: int, *, batch: int = 32, repeats: int = 5, latency_repeats: int = 50,
                        quants: tuple[str, ...] = QUANTS, threads: int | None = None,
                        calibration: int = 16) -> list[dict]:
    """One row per format: Keras float32, then each TFLite quantization."""
    import keras  # here: the bench CLI parses its arguments before TensorFlow loads

    keras.utils.set_random_seed(0)
    model = build_model(name, res, 7)
    rng = np.random.default_rng(0)
    many = rng.uniform(0, 255, (batch, res, res, 3)).astype(np.float32)
    one = many[:1]
    rep = rng.uniform(0, 255, (calibration, res, res, 3)).astype(np.float32)
    keras_fn = serving_function(model, res)
    base = {"model": name, "res": res}
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.keras")
        keras_size = (Path(tmp) / "model.keras").stat().st_size
    rows = {"keras_float32": {**base, "format": "keras_float32", "size_bytes": keras_size}}
    fns = {"keras_float32": lambda x: keras_fn(x).numpy()}
    for quant in quants:  # convert everything first, then time all formats round-robin
        key = f"tflite_{TAGS[quant]}"
        try:
            content = convert(model, res, quant, lambda: iter(rep))
        except Exception as err:  # noqa: BLE001 - a model that does not convert is a result, not a crash
            rows[key] = {**base, "format": key, "error": str(err).strip().splitlines()[-1]}
            continue
        fns[key] = TFLiteModel(content, threads)
        rows[key] = {**base, "format": key, "size_bytes": len(content), "threads": fns[key].threads}
    for key, timing in _measure_round_robin(fns, one, many, latency_repeats, repeats).items():
        rows[key].update(timing)
    rows = list(rows.values())
    keras_ms = rows[0]["single_image"]["median_ms"]
    keras_rate = rows[0]["batch_images_per_s"]
    for row in rows:
        if "single_image" in row:
            row["speedup_single_vs_keras"] = keras_ms / row["single_image"]["median_ms"]
            row["speedup_batch_vs_keras"] = row["batch_images_per_s"] / keras_rate
    keras.backend.clear_session()
    return rows
