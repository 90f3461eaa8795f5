"""Training speed as a run sees it: ``model.fit`` on the real training pipeline, per speed option.

Unlike ``training.py`` (train_on_batch on one batch in memory: the model alone), each
step here gathers a batch from the cached uint8 images and applies the protocol's
augmentation inside tf.data, on the same cores, so images/s is what an epoch of a real
run would see. Variants: float32 or mixed_bfloat16 / mixed_float16, XLA on or off, and
``steps_per_execution``; the images are random (speed does not depend on them).
"""

from __future__ import annotations

import time

import numpy as np

from fer_keras.config import RunConfig
from fer_keras.data.readers import ImageSet
from fer_keras.registry import build_model

#: variant name -> (mixed_precision, jit_compile)
VARIANTS = {"fp32": ("none", False), "bf16": ("mixed_bfloat16", False), "fp32+xla": ("none", True),
            "bf16+xla": ("mixed_bfloat16", True), "fp16": ("mixed_float16", False)}
DEFAULT_VARIANTS = ("fp32", "bf16", "fp32+xla")


def train_speed(name: str, res: int, batch: int, variant: str, *, steps: int = 6, repeats: int = 3,
                steps_per_execution: int = 1, num_classes: int = 7) -> dict:
    """Median images/s over ``repeats`` timed epochs of ``steps`` steps, after one untimed epoch (tracing,
    XLA compilation, optimizer slots)."""
    import keras  # here: the bench CLI parses its arguments before TensorFlow loads

    from fer_keras.data.pipeline import TrainingData
    from fer_keras.train.loop import compile_model
    from fer_keras.train.recipe import dtype_policy

    precision, jit = VARIANTS[variant]
    cfg = RunConfig(model=name, res=res, batch=batch, mixed_precision=precision, jit_compile=jit,
                    steps_per_execution=steps_per_execution)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = batch * steps
    images = ImageSet(name="random", class_names=tuple(f"c{i}" for i in range(num_classes)),
                      labels=rng.integers(0, num_classes, n),
                      pixels=rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8))
    data = TrainingData(images, res, batch, seed=0)
    with dtype_policy(precision):
        model = build_model(name, res, num_classes)
    compile_model(model, 1e-3, cfg, steps_per_epoch=steps, epochs=1 + repeats)
    times: list[float] = []
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
                                           on_epoch_end=lambda e, logs: times.append(time.perf_counter()))
    model.fit(data.epochs(0, None), steps_per_epoch=steps, epochs=1 + repeats, verbose=0, callbacks=[timer],
              shuffle=False)
    epoch_s = [end - begin for begin, end in zip(times[2::2], times[3::2], strict=True)]
    keras.backend.clear_session()
    return {"model": name, "res": res, "batch": batch, "variant": variant, "mixed_precision": precision,
            "jit_compile": jit, "steps_per_execution": steps_per_execution, "steps": steps, "repeats": repeats,
            "params": int(model.count_params()), "images_per_s": n / float(np.median(epoch_s)),
            "first_epoch_s": times[1] - times[0]}


def add_ratios(rows: list[dict]) -> list[dict]:
    """Each row's speed over the fp32 row of the same (model, res, batch, steps_per_execution) in this run."""
    base = {(r["model"], r["res"], r["batch"], r["steps_per_execution"]): r["images_per_s"]
            for r in rows if r.get("variant") == "fp32" and "error" not in r}
    for r in rows:
        key = (r["model"], r["res"], r["batch"], r.get("steps_per_execution"))
        r["ratio_to_fp32"] = r["images_per_s"] / base[key] if "error" not in r and key in base else None
    return rows
