"""What the numbers were measured on, and the machine's own dense float32 matmul peak.

Every result is stamped with the machine so tables from different hosts are never
compared by accident; the matmul peak, measured in the same run, turns a model's
FLOP/s into a fraction of what this CPU (with its current load) can actually do.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
from pathlib import Path

import numpy as np

from fer_keras.timing import summarise, time_calls
from fer_keras.train.precision import cpu_flags, onednn_enabled, speed_flags


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _module_version(module: str) -> str | None:
    """The installed version of the package that provides ``module`` (tensorflow comes as tensorflow-cpu
    too), without importing it."""
    return _version((importlib.metadata.packages_distributions().get(module) or [module])[0])


def machine_info(devices: bool = True) -> dict:
    """CPU model, its speed-relevant flags (AVX-512, bfloat16, AMX) and whether oneDNN is on, cores, load,
    library versions and the UTC date of this run. ``devices=False`` imports
    no TensorFlow (a section that only reads result files): versions from the installed packages, GPUs
    not listed (None)."""
    if devices:
        import keras
        import tensorflow as tf

        gpus, tf_version, keras_version = ([d.name for d in tf.config.list_physical_devices("GPU")],
                                           tf.__version__, keras.__version__)
    else:
        gpus, tf_version, keras_version = None, _module_version("tensorflow"), _module_version("keras")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_flags": speed_flags(cpu_flags()),
        "onednn": onednn_enabled(),
        "cores": cores,
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "gpus": gpus,
        "python": platform.python_version(),
        "tensorflow": tf_version,
        "keras": keras_version,
        "numpy": np.__version__,
        "ai_edge_litert": _version("ai-edge-litert"),
        "platform": platform.platform(),
    }


def matmul_peak(size: int = 2048, repeats: int = 5) -> dict:
    """Dense float32 matmul FLOP/s (2 n^3 per product) of this machine, best and median of ``repeats``."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    b = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    times = time_calls(lambda: product().numpy(), repeats=repeats, warmup=2)
    flops = 2.0 * size**3
    return {"size": size, "dtype": "float32", "flops_per_product": flops,
            "peak_flops": flops / min(times), "median_flops": flops / float(np.median(times)),
            "timing": summarise(times)}
