"""Stored runs without training: a hand-set model that tells classes apart by brightness.

``brightness_model`` is exact (every image of ``write_set`` right), so a wrongly mapped
class order, a wrong split or a wrong set shows as a plain change in counts or accuracy.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from PIL import Image

from fer_keras.config import make_config, save_config
from fer_keras.runs import write_json

LEVELS = {"angry": 60, "happy": 200, "sad": 120}  # mean grey level of each class
RES = 32


def write_set(root: Path, per_class: int, seed: int) -> Path:
    """Noisy 32 px grey images whose brightness gives their class away."""
    rng = np.random.default_rng(seed)
    for cls, level in LEVELS.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.clip(rng.normal(level, 25, (RES, RES)), 0, 255).astype(np.uint8)
            Image.fromarray(img, mode="L").save(root / cls / f"{i}.png")
    return root


def brightness_model(order: list[str]) -> keras.Model:
    """Softmax over ``order``: logit_k = s (2 l_k x - l_k^2), the nearest level l_k to the mean brightness x wins."""
    levels = np.array([LEVELS[c] for c in order], dtype=np.float32)
    scale = 0.01
    inp = keras.Input((RES, RES, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    dense = keras.layers.Dense(len(order), activation="softmax")
    out = dense(x)
    dense.set_weights([np.tile(2 * levels * scale / 3, (3, 1)), -levels**2 * scale])
    return keras.Model(inp, out)


def stored_run(run_dir: Path, order: list[str], **config) -> Path:
    """A finished run folder whose model's outputs (and classes.json) are in ``order``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = make_config({"model": "sequential_simple", "res": RES, "tensorboard": False, **config})
    save_config(cfg, run_dir / "config.yaml")
    write_json(run_dir / "classes.json", order)
    write_json(run_dir / "metrics.json", {"val": {"accuracy": 1.0}})
    brightness_model(order).save(run_dir / "best.keras")
    return run_dir
