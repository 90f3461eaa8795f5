"""Training procedures of ESR (Siqueira et al., AAAI 2020), and its per-branch accuracies.

``schedule: joint`` trains the base and every branch together with the protocol's fit.
``schedule: progressive`` is the authors' schedule (``main_ck_plus.py``): train the base
with one branch; then, branch after branch, reload the best ensemble so far, add a new
branch and train it alone (the base and the earlier branches keep their weights; the
authors set their learning rate to 0). Every stage runs the protocol's callbacks and
keeps its best model (by the ensemble's validation score the run's ``checkpoint_metric``
names, accuracy by default) in ``esr_stage<k>.keras``; the last stage's best becomes
``best.keras``. Both schedules add each branch's accuracy to metrics.json
(``branch_accuracy``, branch 1 first).
"""

from __future__ import annotations

import shutil
from functools import partial

import keras
import numpy as np

from fer_keras.data.pipeline import eval_dataset
from fer_keras.data.readers import ImageSet
from fer_keras.models.esr import branch_probs_model, num_branches
from fer_keras.registry import build_model
from fer_keras.runs import replacing, score_file
from fer_keras.train.loop import RunContext, TrainResult, compile_model, fit_phase, fit_protocol


def stage_file(k: int) -> str:
    return f"esr_stage{k}.keras"


def branch_accuracy(model: keras.Model, images: ImageSet, res: int, batch: int = 64, *, pipeline: str) -> dict:
    """Accuracy of each branch alone, in branch order."""
    ds = eval_dataset(images, res, batch, pipeline=pipeline).map(lambda x, y: x)
    probs = branch_probs_model(model).predict(ds, verbose=0)
    probs = probs if isinstance(probs, list) else [probs]
    return {"branch_accuracy": [float(np.mean(np.argmax(p, axis=1) == images.labels)) for p in probs]}


def train_esr(ctx: RunContext, model: keras.Model) -> TrainResult:
    """Train ESR jointly or progressively; its evaluation adds the per-branch accuracies."""
    if ctx.options["schedule"] == "progressive":
        fit_progressive(ctx, num_branches(model))
    else:
        fit_protocol(ctx, model)
    cfg, batch = ctx.cfg, ctx.global_batch
    return TrainResult(split_metrics=partial(branch_accuracy, res=cfg.res, batch=batch, pipeline=cfg.pipeline))


def _grow(cfg, k: int, num_classes: int, previous: keras.Model | None) -> keras.Model:
    """A k-branch ESR; with ``previous`` (k - 1 branches) its weights are copied and frozen."""
    model = build_model(cfg.model, cfg.res, num_classes, pretrain=cfg.pretrain, pooling=cfg.pooling,
                        weights_dir=cfg.weights_dir, paper_faithful=cfg.paper_faithful, color=cfg.color,
                        equalize=cfg.equalize,
                        **{**cfg.model_options, "branches": k})
    if previous is not None:
        for layer in previous.layers:
            if layer.weights:
                target = model.get_layer(layer.name)
                target.set_weights(layer.get_weights())
                target.trainable = False
    return model


def fit_progressive(ctx: RunContext, total: int) -> None:
    """One phase per stage (``stage1`` ...), then the last stage's best becomes ``best.keras``."""
    for k in range(1, total + 1):
        ctx.run_phase(f"stage{k}", partial(_fit_stage, ctx, k, total))
    final = ctx.run_dir / stage_file(total)
    for src, dst in ((final, ctx.run.model_file), (score_file(final), ctx.run.best_score_file)):
        with replacing(dst) as tmp:
            shutil.copyfile(src, tmp)


def _fit_stage(ctx: RunContext, k: int, total: int) -> None:
    cfg = ctx.cfg
    with ctx.strategy.scope():
        previous = (keras.models.load_model(ctx.run_dir / stage_file(k - 1), safe_mode=True, compile=False)
                    if k > 1 else None)
        model = _grow(cfg, k, len(ctx.splits.train.class_names), previous)
        compile_model(model, cfg.lr, cfg, steps_per_epoch=ctx.steps_per_epoch, epochs=cfg.epochs)
    print(f"[{cfg.resolved_run_id()}] ESR stage {k}/{total}: training branch {k}"
          f"{' with the shared base' if k == 1 else ' alone'}, up to {cfg.epochs} epochs")
    fit_phase(ctx, model, f"stage{k}", cfg.epochs, checkpoint=stage_file(k))
