"""Which tf.distribute strategy a run uses.

MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster; MirroredStrategy over
every visible GPU (the paper: 2 GPUs, HierarchicalCopyAllReduce); explicit devices
when asked (tests use two logical CPUs); otherwise the default single-device strategy.
The global batch is the per-replica batch times the number of replicas.

Multi-worker: every worker builds the same stream of global batches (a pure function of
seed, phase and epoch, see fer_keras.data.pipeline) and tf.data's DATA sharding hands each
worker its share of every global batch, so the workers together train on exactly the
batches one process would. Keras 3's ``fit`` needs two repairs under this strategy
(keras-team/keras#20585), applied by :func:`make_strategy` and :func:`prepare_fit`.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer


def make_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """The run's strategy; call it before any other TensorFlow op (a multi-worker runtime is set up once)."""
    if os.environ.get("TF_CONFIG"):
        _average_multi_worker_logs()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(cross_device_ops=tf.distribute.HierarchicalCopyAllReduce())
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.get_strategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: always, except on the non-chief workers of a
    multi-worker run (TensorFlow's own test for who saves checkpoints)."""
    return bool(strategy.extended.should_checkpoint)


def prepare_fit(strategy: tf.distribute.Strategy, model: keras.Model, dataset: tf.data.Dataset
                ) -> tf.data.Dataset:
    """The training dataset to pass to ``model.fit``, and the model made ready for it.

    Multi-worker: DATA sharding, stated rather than left to AUTO (which looks for files to shard,
    finds none and falls back to DATA with a warning): every worker computes each global batch and
    keeps its slice. And Keras 3 builds the model from one distributed batch averaged with
    ``strategy.reduce``, which this strategy cannot do for an (images, labels) pair ("Attempt to
    convert a value (PerReplica...)"); building needs only shapes, so it gets the dataset's.
    """
    if not is_multi_worker(strategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    spec, build = dataset.element_spec, type(model)._maybe_symbolic_build
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(model, data_batch=spec)
    return dataset


def _average_multi_worker_logs() -> None:
    """Keras 3 averages each step's logs across workers with ``strategy.reduce("MEAN", v, axis=0)``, which
    fails on a scalar loss ("Invalid reduction dimension 0 for input with 0 dimensions"): average scalars
    across replicas only (axis None), batched values along the batch as before."""
    original = getattr(trainer, "reduce_per_replica", None)
    if original is None or getattr(original, "multi_worker_repair", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if not (is_multi_worker(strategy) and reduction in ("auto", "mean")):
            return original(values, strategy, reduction)

        def mean(v):
            rank = strategy.experimental_local_results(v)[0].shape.rank
            return strategy.reduce("MEAN", v, axis=0 if rank else None)

        return keras.tree.map_structure(mean, values)

    reduce_per_replica.multi_worker_repair = True
    trainer.reduce_per_replica = reduce_per_replica


def describe(strategy: tf.distribute.Strategy) -> dict:
    return {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync)}
