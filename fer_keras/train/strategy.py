"""Which tf.distribute strategy a run uses.

MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster; MirroredStrategy over
every visible GPU (the paper: 2 GPUs, HierarchicalCopyAllReduce); explicit devices
when asked (tests use two logical CPUs); otherwise the default single-device strategy.
The global batch is the per-replica batch times the number of replicas.
"""

from __future__ import annotations

import os

import tensorflow as tf


def make_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(cross_device_ops=tf.distribute.HierarchicalCopyAllReduce())
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy) -> dict:
    return {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync)}
