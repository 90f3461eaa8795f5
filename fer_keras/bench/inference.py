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

from fer_keras.bench.timing import summarise, time_calls
from fer_keras.export.tflite import QUANTS, TAGS, TFLiteModel, convert, serving_function


def _measure(fn, one: np.ndarray, many: np.ndarray, latency_repeats: int, repeats: int) -> dict:
    single = summarise(time_calls(lambda: fn(one), repeats=latency_repeats, warmup=5))
    batched = time_calls(lambda: fn(many), repeats=repeats, warmup=2)
    return {"single_image": single, "batch": len(many),
            "batch_images_per_s": len(many) / float(np.median(batched)), "batch_timing": summarise(batched)}


def inference_benchmark(name: str, res: int, *, batch: int = 32, repeats: int = 5, latency_repeats: int = 50,
                        quants: tuple[str, ...] = QUANTS, threads: int | None = None,
                        calibration: int = 16) -> list[dict]:
    """One row per format: Keras float32, then each TFLite quantization."""
    import keras

    from fer_keras.registry import build_model

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
    rows = [{**base, "format": "keras_float32", "size_bytes": keras_size,
             **_measure(lambda x: keras_fn(x).numpy(), one, many, latency_repeats, repeats)}]
    for quant in quants:
        try:
            content = convert(model, res, quant, lambda: iter(rep))
        except Exception as err:  # noqa: BLE001 - a model that does not convert is a result, not a crash
            rows.append({**base, "format": f"tflite_{TAGS[quant]}", "error": str(err).strip().splitlines()[-1]})
            continue
        lite = TFLiteModel(content, threads)
        rows.append({**base, "format": f"tflite_{TAGS[quant]}", "size_bytes": len(content), "threads": lite.threads,
                     **_measure(lite, one, many, latency_repeats, repeats)})
    keras_ms = rows[0]["single_image"]["median_ms"]
    keras_rate = rows[0]["batch_images_per_s"]
    for row in rows:
        if "single_image" in row:
            row["speedup_single_vs_keras"] = keras_ms / row["single_image"]["median_ms"]
            row["speedup_batch_vs_keras"] = row["batch_images_per_s"] / keras_rate
    keras.backend.clear_session()
    return rows
