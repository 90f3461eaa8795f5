"""Triplet-loss embedding plus a linear classifier: the TLF-ResNet18 procedure (Haider et al., Sensors 2023).

1. The embedding (``tlf_resnet18`` up to its ``embedding`` layer) is trained with the
   triplet loss L = max(0, |f(a)-f(p)|^2 - |f(a)-f(n)|^2 + margin), triplets mined
   online within each batch: ``batch_hard`` (each anchor with its farthest positive and
   nearest negative; Hermans et al. 2017) or ``batch_all`` (every valid triplet, averaged
   over those with a positive loss). The best embedding, kept in ``embedding.keras``, is the
   one with the best ``val_centroid_balanced_accuracy`` (:class:`CentroidScore`): each
   validation face goes to the nearest class centroid of a fixed sample of un-augmented
   training faces, and the mean recall over classes is scored. Not ``val_loss``: an embedding
   shrunk to a point has a validation triplet loss of exactly the margin, lower than that of
   many spread but imperfect embeddings, while its centroids predict one class (chance). The
   protocol's learning-rate and early-stopping callbacks still watch ``val_loss``. Before
   each validation pass the BatchNorm statistics are recomputed on un-augmented training
   images (:class:`RecomputeBatchNorm`; with ``batchnorm_recompute`` the protocol's callbacks do it, on up
   to 4096 images): the moving averages lag the fast-changing weights of
   a short run, and with lagging statistics the evaluated embedding shrinks to a point
   although the training-mode one separates the classes.
2. A linear classifier (``head``: ``svm`` = LinearSVC, ``lda``, ``logreg``) is fitted on
   the standardised embeddings of the training split (no augmentation; class weights as
   the run's). Standardised, because the coordinates of a unit-norm 512-d embedding spread
   by a few hundredths at most: a LinearSVC at C=1 on the raw values is dominated by its
   regulariser (on CK+ it put 86% of the test faces in one class).
3. Its weights, the standardisation folded in, become the model's ``head_decision`` Dense
   layer and the whole model is saved as ``best.keras``, so it is evaluated, tested
   cross-domain and exported like any run, with no pickled estimator. ``head.json`` records
   the classifier.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from fer_keras.config import DEFAULT_SEED
from fer_keras.data.pipeline import eval_dataset
from fer_keras.models.catalog import TLF_CHECKPOINT, TLF_HEADS, TLF_MININGS
from fer_keras.models.features import feature_extractor
from fer_keras.models.tlf import DECISION
from fer_keras.runs import replacing, score_file, write_json
from fer_keras.train.batchnorm import RecomputeBatchNorm
from fer_keras.train.loop import RunContext, TrainResult, fit_phase, statistics_batches

EMBEDDING_FILE = "embedding.keras"
#: Bias of a class the classifier never saw in training: never predicted.
ABSENT_BIAS = -1e4
#: Un-augmented training images whose batch statistics replace the moving ones before each validation; the
#: same images give the class centroids of :class:`CentroidScore`.
BN_IMAGES = 1024


def pairwise_squared_distances(embeddings):
    dot = ops.matmul(embeddings, ops.transpose(embeddings))
    sq = ops.diagonal(dot)
    return ops.maximum(ops.expand_dims(sq, 1) - 2.0 * dot + ops.expand_dims(sq, 0), 0.0)


def triplet_loss(labels, embeddings, margin: float, mining: str):
    """Per-anchor triplet losses (batch,), scaled so their mean is the batch's triplet loss.

    ``batch_hard``: mean over anchors that have a positive and a negative in the batch;
    ``batch_all``: sum over valid triplets / number of triplets with a positive loss.
    """
    if mining not in TLF_MININGS:
        raise ValueError(f"mining must be one of {TLF_MININGS}, got {mining!r}")
    d = pairwise_squared_distances(ops.cast(embeddings, "float32"))
    labels = ops.reshape(labels, (-1,))
    n = ops.shape(labels)[0]
    same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0))
    positive = ops.logical_and(same, ops.logical_not(ops.cast(ops.eye(n), "bool")))
    negative = ops.logical_not(same)
    batch = ops.cast(n, "float32")
    if mining == "batch_hard":
        hardest_pos = ops.max(ops.where(positive, d, 0.0), axis=1)
        hardest_neg = ops.min(ops.where(negative, d, ops.max(d) + 1.0), axis=1)
        valid = ops.cast(ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1)), "float32")
        loss = ops.relu(hardest_pos - hardest_neg + margin) * valid
        return loss * batch / ops.maximum(ops.sum(valid), 1.0)
    mask = ops.logical_and(ops.expand_dims(positive, 2), ops.expand_dims(negative, 1))  # (a, p, n)
    terms = ops.relu(ops.expand_dims(d, 2) - ops.expand_dims(d, 1) + margin) * ops.cast(mask, "float32")
    hard = ops.sum(ops.cast(terms > 1e-16, "float32"))
    return ops.sum(terms, axis=(1, 2)) * batch / ops.maximum(hard, 1.0)


@keras.saving.register_keras_serializable(package="fer_keras")
class TripletLoss(keras.losses.Loss):
    """Online-mined triplet loss on one-hot labels and embeddings."""

    def __init__(self, margin: float, mining: str, name: str = "triplet_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if mining not in TLF_MININGS:
            raise ValueError(f"mining must be one of {TLF_MININGS}, got {mining!r}")
        self.margin, self.mining = float(margin), mining

    def call(self, y_true, y_pred):
        return triplet_loss(ops.argmax(y_true, axis=-1), y_pred, self.margin, self.mining)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype="float64")
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def centroid_balanced_accuracy(reference: np.ndarray, reference_labels: np.ndarray,
                               embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Mean recall over the classes of ``labels`` when each embedding takes the class of the nearest (cosine)
    centroid of the L2-normalised ``reference`` embeddings. Deterministic (ties go to the lowest class), and
    an embedding that maps every face to one point scores chance, 1 / classes, whatever their frequencies."""
    classes = np.unique(reference_labels)
    ref = _unit(reference)
    centroids = _unit(np.stack([ref[reference_labels == c].mean(axis=0) for c in classes]))
    predicted = classes[np.argmax(_unit(embeddings) @ centroids.T, axis=1)]
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def _labels(batches: tf.data.Dataset) -> np.ndarray:
    """The integer labels of (images, one-hot labels) batches."""
    return np.concatenate([np.argmax(np.asarray(y), axis=-1) for _, y in batches])


class CentroidScore(keras.callbacks.Callback):
    """Puts :data:`TLF_CHECKPOINT` in each epoch's logs: the validation faces classified by the nearest class
    centroid of the ``reference`` training faces' embeddings (:func:`centroid_balanced_accuracy`).

    The embedding's checkpoint criterion, as the triplet loss is not one (a collapsed embedding can have a
    low validation loss). Give it to :func:`protocol_callbacks` as a scorer: it then runs at epoch end,
    after the validation pass (so with the BatchNorm statistics :class:`RecomputeBatchNorm` set on test
    begin) and the EMA swap, and before the checkpoint reads the logs.
    """

    def __init__(self, reference: Callable[[], tf.data.Dataset], validation: tf.data.Dataset):
        super().__init__()
        self.reference, self.validation = reference, validation
        self.labels: tuple[np.ndarray, np.ndarray] | None = None  # read once: the batches come in a fixed order

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self.labels is None:
            self.labels = _labels(self.reference()), _labels(self.validation)
        reference = self.model.predict(self.reference(), verbose=0)
        embeddings = self.model.predict(self.validation, verbose=0)
        logs[TLF_CHECKPOINT] = centroid_balanced_accuracy(reference, self.labels[0], embeddings, self.labels[1])


def fit_linear_head(embeddings: np.ndarray, labels: np.ndarray, head: str,
                    class_weight: dict[int, float] | None = None, seed: int = DEFAULT_SEED) -> Pipeline:
    """A fitted scikit-learn linear classifier (LinearSVC, LDA or multinomial LogisticRegression) on
    standardised embeddings: a ``StandardScaler`` + estimator pipeline."""
    if head == "svm":
        clf = LinearSVC(C=1.0, class_weight=class_weight, random_state=seed, max_iter=10_000)
    elif head == "lda":
        clf = LinearDiscriminantAnalysis()  # no class weights: the class priors play that role
    elif head == "logreg":
        clf = LogisticRegression(C=1.0, class_weight=class_weight, max_iter=5_000)
    else:
        raise ValueError(f"head must be one of {TLF_HEADS}, got {head!r}")
    return make_pipeline(StandardScaler(), clf).fit(embeddings, labels)


def dense_weights(clf, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (features, classes), bias (classes,)) whose argmax equals ``clf.predict``.

    Multi-class LinearSVC (one-vs-rest), LDA and LogisticRegression decide by the argmax of
    ``coef_ @ x + intercept_``; a binary one has a single decision function d (class 1 when
    d > 0), stored as the scores (0, d). Classes absent from training get ``ABSENT_BIAS``. A
    pipeline's ``StandardScaler`` is folded in: ``coef_ @ ((x - mean) / scale)`` is linear in x.
    """
    mean = scale = None
    if isinstance(clf, Pipeline):  # StandardScaler, estimator (fit_linear_head)
        scaler, clf = clf[0], clf[-1]
        mean, scale = scaler.mean_, scaler.scale_
    coef, intercept = np.atleast_2d(clf.coef_), np.atleast_1d(clf.intercept_)
    if mean is not None:
        coef = coef / scale
        intercept = intercept - coef @ mean
    classes = np.asarray(clf.classes_, dtype=int)
    if len(classes) == 2 and coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    kernel = np.zeros((coef.shape[1], num_classes), dtype="float32")
    bias = np.full(num_classes, ABSENT_BIAS, dtype="float32")
    kernel[:, classes] = coef.T
    bias[classes] = intercept
    return kernel, bias


def _embed(model: keras.Model, images, res: int, batch: int, pipeline: str) -> np.ndarray:
    ds = eval_dataset(images, res, batch, pipeline=pipeline).map(lambda x, y: x)
    return model.predict(ds, verbose=0)


def train_triplet(ctx: RunContext, model: keras.Model) -> TrainResult:
    """Two phases: the triplet-loss embedding (``embedding``), then a linear head fitted on the training
    embeddings and stored in ``best.keras`` (``head``)."""
    embed = feature_extractor(model)  # the L2-normalised embedding
    ctx.run_phase("embedding", partial(_fit_embedding, ctx, embed, ctx.options))
    ctx.run_phase("head", partial(_fit_head, ctx, model, embed, ctx.options))
    return TrainResult()


def _fit_embedding(ctx: RunContext, embed: keras.Model, opts: dict[str, Any]) -> None:
    cfg = ctx.cfg
    with ctx.strategy.scope():
        embed.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr),
                      loss=TripletLoss(opts["margin"], opts["mining"]))
    print(f"[{cfg.resolved_run_id()}] triplet embedding ({opts['mining']}, margin {opts['margin']}): "
          f"up to {cfg.epochs} epochs")
    sample = statistics_batches(cfg, ctx.splits.train, ctx.global_batch, BN_IMAGES)
    # on_test_begin: before any validation batch and any checkpoint. With batchnorm_recompute the protocol's
    # callbacks already do it (on up to RECOMPUTE_IMAGES images): a second pass would only repeat the work.
    own = [] if cfg.batchnorm_recompute else [RecomputeBatchNorm(sample)]
    ctx.extra_callbacks.extend(own)
    try:
        fit_phase(ctx, embed, "embedding", cfg.epochs, checkpoint=EMBEDDING_FILE, monitor=TLF_CHECKPOINT,
                  mode="max", scorers=[CentroidScore(sample, ctx.val_ds)])
    finally:
        for callback in own:
            ctx.extra_callbacks.remove(callback)


def _fit_head(ctx: RunContext, model: keras.Model, embed: keras.Model, opts: dict[str, Any]) -> None:
    cfg, run_dir = ctx.cfg, ctx.run_dir
    embed.load_weights(run_dir / EMBEDDING_FILE)  # the best embedding by TLF_CHECKPOINT
    train = ctx.splits.train
    features = _embed(embed, train, cfg.res, ctx.global_batch, cfg.pipeline)
    clf = fit_linear_head(features, train.labels, opts["head"], ctx.class_weight, cfg.seed)
    kernel, bias = dense_weights(clf, len(train.class_names))
    model.get_layer(DECISION).set_weights([kernel, bias])
    with replacing(ctx.run.model_file) as tmp:
        model.save(tmp)
    with replacing(ctx.run.best_score_file) as tmp:
        shutil.copyfile(score_file(run_dir / EMBEDDING_FILE), tmp)
    write_json(run_dir / "head.json", {
        "head": opts["head"], "estimator": type(clf[-1]).__name__, "params": clf[-1].get_params(),
        "standardised": "embeddings standardised per coordinate (folded into head_decision)",
        "train_accuracy": float(np.mean(clf.predict(features) == train.labels)),
        "probabilities": "the estimator's own (softmax regression)" if opts["head"] == "logreg"
        else "softmax over decision values: a pseudo-probability, not calibrated",
    })
