"""Training throughput per model: images/s, ms/step, FLOPs and the fraction of matmul peak.

Steps run ``train_on_batch`` on one batch already in memory, so the number is the
model's own training speed with no input pipeline behind it. FLOP convention: one
training step costs 3 x the forward FLOPs (forward, plus backward for activations and
for weights, each about one forward), counted analytically (see ``flops.py``).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from fer_keras.bench.flops import count_flops
from fer_keras.registry import build_model
from fer_keras.timing import summarise, time_calls
from fer_keras.train.loop import compile_model

TRAIN_FLOPS_FACTOR = 3


def training_throughput(name: str, res: int, batch: int, *, steps: int = 5, repeats: int = 5,
                        peak_flops: float | None = None, num_classes: int = 7) -> dict:
    """Median over ``repeats`` timed groups of ``steps`` steps, after two warm-up steps."""
    keras.utils.set_random_seed(0)
    model = build_model(name, res, num_classes)
    compile_model(model, 1e-4)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (batch, res, res, 3)).astype(np.float32))
    y = tf.constant(np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)])

    def group():
        for _ in range(steps):
            model.train_on_batch(x, y)

    for _ in range(2):  # warm-up: tracing, optimizer slots, first steps
        model.train_on_batch(x, y)
    times = time_calls(group, repeats=repeats, warmup=0)
    step_s = float(np.median(times)) / steps
    flops = count_flops(model)
    per_image = TRAIN_FLOPS_FACTOR * flops["forward_flops"]
    achieved = per_image * batch / step_s
    row = {"model": name, "res": res, "batch": batch, "steps": steps, "repeats": repeats,
           "params": int(model.count_params()), "ms_per_step": step_s * 1000, "images_per_s": batch / step_s,
           "step_timing": summarise([t / steps for t in times]),
           "forward_flops_per_image": flops["forward_flops"], "train_flops_per_image": per_image,
           "flops_method": flops["method"], "uncounted_layers": flops["uncounted_layers"],
           "achieved_flops_per_s": achieved,
           "fraction_of_matmul_peak": achieved / peak_flops if peak_flops else None}
    keras.backend.clear_session()
    return row
