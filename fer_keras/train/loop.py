"""One protocol run, end to end: data, model, one- or two-phase training, evaluation.

Pre-trained backbones are fine-tuned in two phases (PROTOCOL.md, 'Training'): the new
head is trained with the backbone frozen for up to ``phase1_epochs``; the best
checkpoint is reloaded, every layer is unfrozen and training continues until early
stopping. Models trained from scratch have one phase. Each phase is resumable; a
finished phase is never run again.

A model with its own procedure (the ``trainer`` of its row in ``fer_keras.models.catalog``)
plugs in through one contract: ``trainer(ctx, model) -> TrainResult``. It runs each of its
phases through :meth:`RunContext.run_phase` (skipped once done, recorded, timed; a killed
phase resumes at its epoch through :func:`fit_phase`), reads its options from
:attr:`RunContext.options` (validated, defaults filled in) and leaves the model to evaluate
in the run's ``best.keras``; :func:`train_run` then evaluates it, whatever the procedure.

Every file of the run folder is written atomically, so a run stopped by a full disk or a
read-only folder (an ``OSError`` naming the file) resumes when started again. Under
MultiWorkerMirroredStrategy (``TF_CONFIG``) every worker trains and only the chief writes
and evaluates; the other workers read the chief's run folder to resume.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fer_keras.config import ConfigError, RunConfig, save_config
from fer_keras.data.class_weights import class_weights
from fer_keras.data.demo import ensure_demo
from fer_keras.data.images import all_grey
from fer_keras.data.legacy import make_legacy_dataset
from fer_keras.data.pipeline import TrainingData, eval_dataset
from fer_keras.data.readers import ImageSet, folder_classes
from fer_keras.data.splits import Splits, splits_for
from fer_keras.evaluate import prior as prior_correction
from fer_keras.evaluate.dedup import dedup_entry, dedup_line, reference_of
from fer_keras.evaluate.evaluator import evaluate_set, predict_probs
from fer_keras.labels import check_known_classes
from fer_keras.models.features import set_features_trainable
from fer_keras.models.preprocessing import preprocessing_mode
from fer_keras.registry import build_model, get_spec
from fer_keras.runs import LEGACY_VALUES, Run, read_json, remove_partial_writes, write_json, write_text
from fer_keras.timing import Stopwatch
from fer_keras.train.batchnorm import RECOMPUTE_IMAGES, batchnorm_layers
from fer_keras.train.callbacks import protocol_callbacks, training_seconds_before
from fer_keras.train.precision import precision_line, precision_record, resolve_precision
from fer_keras.train.recipe import BalancedAccuracy, dtype_policy, make_loss, make_optimizer
from fer_keras.train.strategy import describe, is_chief, is_multi_worker, make_strategy, prepare_fit

DEMO_SETS = ("demo", "demo_wild")


@dataclass
class RunContext:
    """What a training procedure works with: the run, its data, its strategy and its class weights."""

    cfg: RunConfig
    run_dir: Path
    splits: Splits
    strategy: tf.distribute.Strategy
    global_batch: int
    train_data: Callable[[int, int], tf.data.Dataset]  # (phase number, first epoch) -> endless training batches
    steps_per_epoch: int
    val_ds: tf.data.Dataset
    class_weight: dict[int, float] | None
    verbose: int = 2
    extra_callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    #: Un-augmented training batches the BatchNorm statistics are recomputed on (the EMA model's, or before
    #: every validation with ``batchnorm_recompute``: fer_keras.train.batchnorm).
    bn_batches: Callable[[], tf.data.Dataset] | None = None
    chief: bool = True  # False on the other workers of a multi-worker run: they write nothing
    _state: dict | None = field(default=None, init=False, repr=False)

    @property
    def run(self) -> Run:
        return Run(self.run_dir)

    def read_state(self) -> dict:
        """The run's progress, read from the folder once and then kept in memory: a worker that is not
        the chief never races the chief's writes."""
        if self._state is None:
            path = self.run.state_file
            self._state = read_json(path) if path.is_file() else {"phases_done": []}
        return self._state

    def write_state(self, state: dict) -> None:
        self._state = state
        if self.chief:
            write_json(self.run.state_file, state)

    @property
    def options(self) -> dict[str, Any]:
        """The model's options, validated against its schema, defaults filled in: the only place a
        procedure reads them, so no default is written twice."""
        return self.cfg.resolved_options()

    def run_phase(self, name: str, body: Callable[[], None]) -> bool:
        """Run ``body`` as the phase ``name`` unless the run already finished it; return whether it ran.

        The phase is recorded in ``phases_done`` (and its seconds added to ``train_seconds``) only when
        ``body`` returns, so a run killed inside it runs it again, and a :func:`fit_phase` inside resumes
        at the epoch it was in. The phases of a run are numbered in the order they finish.
        """
        state = self.read_state()
        if name in state["phases_done"]:
            return False
        clock = Stopwatch()
        body()
        state = self.read_state()
        state["phases_done"].append(name)
        state["train_seconds"] = state.get("train_seconds", 0) + round(clock.seconds, 1)
        self.write_state(state)
        return True


@dataclass(frozen=True)
class TrainResult:
    """What a training procedure hands back to :func:`train_run`, which evaluates ``best.keras`` after it.

    ``split_metrics(model, images)`` adds procedure-specific results to each evaluated split's
    entry of metrics.json (ESR's per-branch accuracies).
    """

    split_metrics: Callable[[keras.Model, ImageSet], dict] | None = None


#: A training procedure: trains ``model`` (already built under the strategy) in the run ``ctx`` describes.
Trainer = Callable[[RunContext, keras.Model], TrainResult]


def prepare_data(cfg: RunConfig) -> Splits:
    """Read and split the training data; check the cross-domain set's classes before any work."""
    if cfg.dataset in DEMO_SETS or cfg.crossdomain in DEMO_SETS:
        ensure_demo(cfg.data_root)
    splits = splits_for(cfg)
    for line in splits.report_lines():
        print(line)
    if cfg.cache and cfg.pipeline == "tfdata":  # both waits are otherwise silent
        print(f"note: the {len(splits.train)} training images are decoded into memory before the first epoch, "
              f"and the first epoch also decodes and caches the {len(splits.val)} validation images")
    cross = cfg.crossdomain_dir()
    if cross is not None:
        if cross.is_dir():
            check_known_classes(splits.train.class_names, folder_classes(cross), test_name=str(cross))
        else:
            print(f"note: cross-domain set {cross} does not exist yet; `make crossdomain` will need it")
    return splits


def _datasets(cfg: RunConfig, splits: Splits, global_batch: int
              ) -> tuple[Callable[[int, int], tf.data.Dataset], int, tf.data.Dataset]:
    """(endless training batches of a phase from a given epoch on, steps per epoch, validation batches)."""
    val = eval_dataset(splits.val, cfg.res, global_batch, pipeline=cfg.pipeline, cache=cfg.cache)
    if cfg.pipeline == "legacy":
        def train(phase: int, first: int) -> tf.data.Dataset:
            return make_legacy_dataset(splits.train, cfg.res, global_batch, training=True, seed=cfg.seed,
                                       phase=phase, first_epoch=first, epochs=None)

        return train, math.ceil(len(splits.train) / global_batch), val
    data = TrainingData(splits.train, cfg.res, global_batch, seed=cfg.seed, cache=cfg.cache, sampling=cfg.sampling,
                        erasing=cfg.random_erasing)
    return lambda phase, first: data.epochs(first, None, phase=phase), data.steps_per_epoch, val


def resolve_color(color: str, train: ImageSet) -> tuple[str, str]:
    """The model's input colour ('rgb' or 'grey') and why: as configured, or for 'auto' grey exactly when the
    training images are grey (a sample of them has R = G = B)."""
    if color != "auto":
        return color, "configured"
    if all_grey(train.paths, train.pixels):
        return "grey", "auto: the training images are grey"
    return "rgb", "auto: the training images have colour"


def statistics_batches(cfg: RunConfig, train: ImageSet, batch: int, images: int = RECOMPUTE_IMAGES
                       ) -> Callable[[], tf.data.Dataset]:
    """A fixed, seeded sample of ``images`` training images without augmentation, batched as in training: what
    BatchNorm statistics are recomputed on (fer_keras.train.batchnorm)."""
    rng = np.random.default_rng(cfg.seed)
    index = np.sort(rng.permutation(len(train))[:images])
    data = eval_dataset(train.subset(index, f"{train.name} (BatchNorm sample)"), cfg.res, batch,
                        pipeline=cfg.pipeline, cache=cfg.cache)
    return lambda: data


def compile_model(model: keras.Model, lr: float, cfg: RunConfig | None = None, *, steps_per_epoch: int = 1,
                  epochs: int = 1, class_counts: list[int] | None = None) -> None:
    """The protocol's Adam at ``lr`` without ``cfg``; with it, the optimizer, loss, schedule (spread over
    ``epochs`` x ``steps_per_epoch``) and compilation options ``cfg`` names (``fer_keras.train.recipe``).
    Accuracy is always a metric; with ``checkpoint_metric: balanced_accuracy`` so is :class:`BalancedAccuracy`,
    which logs the ``val_balanced_accuracy`` the checkpoint is chosen by."""
    metrics: list = ["accuracy"]
    if cfg is None:
        optimizer, loss, options = keras.optimizers.Adam(learning_rate=lr), "categorical_crossentropy", {}
    else:
        cfg = cfg.model_copy(update={"lr": lr})
        optimizer, loss = make_optimizer(cfg, model, steps_per_epoch, epochs), make_loss(cfg, class_counts)
        options = {"jit_compile": cfg.jit_compile, "steps_per_execution": cfg.steps_per_execution}
        if cfg.checkpoint_metric == "balanced_accuracy":
            if len(model.outputs) != 1:
                raise ConfigError(f"checkpoint_metric 'balanced_accuracy' needs a model with one output; "
                                  f"{model.name} has {len(model.outputs)}")
            metrics.append(BalancedAccuracy(int(model.outputs[0].shape[-1])))
    # Keywords, not positions: Keras 3 reads a third positional argument as loss_weights. Under mixed_float16
    # Keras wraps the optimizer in a LossScaleOptimizer itself (compile's auto_scale_loss).
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **options)


def _versions() -> str:
    pkgs = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                  if d.metadata["Name"])
    return f"python=={platform.python_version()}\n" + "\n".join(pkgs) + "\n"


def _check_same_run(cfg: RunConfig, run_dir: Path) -> None:
    saved = Run(run_dir).config_values()
    if not saved:
        return
    new = cfg.model_dump(mode="json")
    # Keys added to RunConfig after the run was saved (e.g. ``deterministic``) count as their defaults, or as
    # LEGACY_VALUES says where a run saved before them did otherwise.
    old = {**RunConfig().model_dump(mode="json"), **LEGACY_VALUES, **saved}
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differ:
        raise ConfigError(
            f"{run_dir} already holds a run with a different config (differs in: {', '.join(differ)}); "
            "choose another --out or --run-id, or pass --force to start it again"
        )


def train_run(cfg: RunConfig, *, force: bool = False, verbose: int = 2,
              extra_callbacks: list[keras.callbacks.Callback] | None = None) -> Path:
    """Train (or resume, or skip if finished) the run ``cfg`` describes; return its folder."""
    run_dir = cfg.run_dir()
    run = Run(run_dir)
    # First, before any other TensorFlow op: a multi-worker strategy must configure the runtime.
    strategy = make_strategy(cfg.devices)
    chief = is_chief(strategy)
    if force and run_dir.exists():
        if is_multi_worker(strategy):
            raise ConfigError(f"--force in a multi-worker run could let a worker resume from the backup the chief "
                              f"deletes; delete {run_dir} instead")
        shutil.rmtree(run_dir)
    if cfg.train_minutes is not None and is_multi_worker(strategy):
        raise ConfigError("train_minutes in a multi-worker run: each worker would read its own clock, and one "
                          "that stopped alone would leave the others waiting for it; use an epoch budget")
    _check_same_run(cfg, run_dir)
    if run.is_finished():
        print(f"{run_dir} is already finished; pass --force to train it again")
        return run_dir
    precision, facts = resolve_precision(cfg.mixed_precision, allow_probe=not is_multi_worker(strategy))
    print(f"[{cfg.resolved_run_id()}] {precision_line(precision, cfg.mixed_precision)}")
    splits = prepare_data(cfg)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()  # for the process: TensorFlow cannot switch it off
    global_batch = cfg.batch * strategy.num_replicas_in_sync
    weights = class_weights(splits.train.counts(), cfg.balance, cfg.balance_cap)
    classes = list(splits.train.class_names)
    spec = get_spec(cfg.model)
    if not chief and spec.trainer:
        raise ConfigError(f"{cfg.model} trains with its own procedure ({spec.trainer}), which writes from every "
                          "worker; multi-worker training runs the protocol's fit only")

    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_partial_writes(run_dir)
        save_config(cfg, run.config_file)
        write_json(run.classes_file, classes)
        write_json(run.class_weights_file,
                   {"balance": cfg.balance, "cap": cfg.balance_cap,
                    "weights": {c: (weights or {}).get(i, 1.0) for i, c in enumerate(classes)}})
        write_json(run.data_summary_file, splits.summary())
        write_text(run.versions_file, _versions())

    color, why = resolve_color(cfg.color, splits.train)
    equalized = ", histogram-equalised inside the model" if cfg.equalize else ""
    print(f"[{cfg.resolved_run_id()}] input colour {color} ({why}){equalized}")
    cfg_built = cfg.model_copy(update={"color": color})  # what procedures build with ('auto' decided)
    train_data, steps_per_epoch, val_ds = _datasets(cfg, splits, global_batch)
    policy = precision.mixed_precision
    with strategy.scope(), dtype_policy(policy):
        model = build_model(cfg.model, cfg.res, len(classes), pretrain=cfg.pretrain, pooling=cfg.pooling,
                            weights_dir=cfg.weights_dir, paper_faithful=cfg.paper_faithful, color=color,
                            equalize=cfg.equalize, **cfg.model_options)
    if policy != "none" and any(str(out.dtype) != "float32" for out in model.outputs):
        raise ConfigError(f"{cfg.model} does not end in a float32 layer under {policy}; "
                          "its probabilities would lose precision (use mixed_precision: none)")
    if chief:
        write_json(run.run_info_file, {
            **describe(strategy), "global_batch": global_batch, "params": int(model.count_params()),
            "preprocessing": preprocessing_mode(model), "paper_faithful": cfg.paper_faithful,
            "val_source": splits.val_source, "pipeline": cfg.pipeline, "tensorflow": tf.__version__,
            "keras": keras.__version__, "recipe": cfg.recipe, "mixed_precision": policy,
            "precision": precision_record(precision, cfg.mixed_precision, facts),
            "jit_compile": cfg.jit_compile, "steps_per_execution": cfg.steps_per_execution,
            "color": color, "color_reason": why, "equalize": cfg.equalize,
            "checkpoint_monitor": cfg.checkpoint_monitor(),
        })
    print(f"[{cfg.resolved_run_id()}] best checkpoint chosen by {cfg.checkpoint_monitor()} (highest)")
    if cfg.batchnorm_recompute and not batchnorm_layers(model):
        print(f"note: batchnorm_recompute is on but {cfg.model} has no BatchNorm layer: nothing to recompute")
    ctx = RunContext(cfg=cfg_built, run_dir=run_dir, splits=splits, strategy=strategy, global_batch=global_batch,
                     train_data=train_data, steps_per_epoch=steps_per_epoch, val_ds=val_ds,
                     class_weight=weights, verbose=verbose,
                     extra_callbacks=list(extra_callbacks or []), chief=chief,
                     bn_batches=statistics_batches(cfg, splits.train, global_batch)
                     if cfg.batchnorm_recompute or (cfg.ema and cfg.ema_batchnorm == "recompute") else None)
    trainer: Trainer = spec.load_trainer() or fit_protocol
    result = trainer(ctx, model)
    if chief:
        evaluate_run(cfg, run_dir, splits, global_batch, extra=result.split_metrics)
    return run_dir


def fit_protocol(ctx: RunContext, model: keras.Model) -> TrainResult:
    """The protocol's fit: one phase from scratch, or frozen-backbone then unfrozen phases."""
    cfg = ctx.cfg
    two_phase = cfg.pretrain != "scratch"
    phases = [("frozen", cfg.phase1_epochs), ("main", cfg.epochs)] if two_phase else [("main", cfg.epochs)]
    for phase, epochs in phases:
        ctx.run_phase(phase, partial(_protocol_phase, ctx, model, phase, epochs, two_phase))
    return TrainResult()


def _protocol_phase(ctx: RunContext, model: keras.Model, phase: str, epochs: int, two_phase: bool) -> None:
    cfg = ctx.cfg
    with ctx.strategy.scope():
        if phase == "main" and two_phase:
            model.load_weights(ctx.run.model_file)  # best frozen-phase model, then unfreeze all
        if two_phase:
            set_features_trainable(model, phase == "main")
        compile_model(model, cfg.lr, cfg, steps_per_epoch=ctx.steps_per_epoch, epochs=epochs,
                      class_counts=list(ctx.splits.train.counts().values()))
    print(f"[{cfg.resolved_run_id()}] phase {phase}: up to {epochs} epochs, global batch {ctx.global_batch}, "
          f"{len(ctx.splits.train)} train / {len(ctx.splits.val)} val images, class weights {cfg.balance}")
    fit_phase(ctx, model, phase, epochs)


def fit_phase(ctx: RunContext, model: keras.Model, phase: str, epochs: int, **callback_options) -> None:
    """``model.fit`` for one resumable phase with the protocol's callbacks (``callback_options`` go to
    :func:`protocol_callbacks`; the checkpoint's ``monitor`` is the run's :meth:`RunConfig.checkpoint_monitor`
    unless they name another): a killed phase resumes at the epoch it was in, on the data and with the
    callbacks' state an uninterrupted run would have; one that had already ended is not fitted again.
    Call it inside :meth:`RunContext.run_phase`, which adds the phase to ``phases_done`` after it."""
    callback_options = {"monitor": ctx.cfg.checkpoint_monitor(), **callback_options}
    callbacks = protocol_callbacks(ctx.cfg, ctx.run_dir, phase, chief=ctx.chief, bn_batches=ctx.bn_batches,
                                   **callback_options)
    first, stopped = callbacks[-1].resume_point()
    if stopped or first >= epochs:
        return
    budget = ctx.cfg.train_minutes
    if budget is not None and training_seconds_before(ctx.run.learning_curve_file, phase, first) >= budget * 60:
        print(f"[{ctx.cfg.resolved_run_id()}] phase {phase}: not trained, the time budget ({budget:g} min) is spent")
        return
    if first:
        print(f"[{ctx.cfg.resolved_run_id()}] phase {phase}: resuming at epoch {first + 1}")
    number = len(ctx.read_state()["phases_done"])  # numbers the phases, so none replays another's draws
    train = prepare_fit(ctx.strategy, model, ctx.train_data(number, first))
    model.fit(train, steps_per_epoch=ctx.steps_per_epoch, initial_epoch=first, epochs=epochs,
              validation_data=ctx.val_ds, class_weight=ctx.class_weight, shuffle=False,
              callbacks=callbacks + ctx.extra_callbacks, verbose=ctx.verbose)


def evaluate_run(cfg: RunConfig, run_dir: Path, splits: Splits, batch: int, *,
                 extra: Callable[[keras.Model, ImageSet], dict] | None = None) -> dict:
    """Evaluate the best checkpoint on the validation and test splits; write metrics.json last.

    ``extra(model, images)`` adds procedure-specific results to each split's entry (ESR's
    per-branch accuracies).
    """
    run = Run(run_dir)
    model, classes = run.model(), run.classes()
    sets: dict[str, ImageSet] = {"val": splits.val}
    if splits.test is not None and not cfg.paper_faithful:
        sets["test"] = splits.test
    # The prior correction's tau is chosen on the validation predictions, before any test image is seen.
    val_probs = predict_probs(model, splits.val, cfg.res, model_classes=classes, pipeline=cfg.pipeline,
                              batch=batch, tta=cfg.tta())
    prior = prior_correction.choose(splits.train.counts(), splits.val.labels, val_probs, splits.val.class_names)
    prior_correction.save(run_dir, prior)
    results = {tag: evaluate_set(model, images, cfg.res, model_classes=classes, pipeline=cfg.pipeline,
                                 out_dir=run_dir, tag=tag, batch=batch, tta=cfg.tta(), prior=prior,
                                 probs=val_probs if tag == "val" else None)
               for tag, images in sets.items()}
    if extra is not None:
        for tag, images in sets.items():
            results[tag].update(extra(model, images))
    if "test" in results:  # the score on test images with no exact or near copy in train or val (issue 24)
        results["test"]["dedup"] = dedup_entry(reference_of(splits), splits.test, run.predictions_file("test"))
        print(dedup_line(results["test"]["dedup"], f"[{cfg.resolved_run_id()}] test"))
    results["run_id"] = cfg.resolved_run_id()
    results["recipe"] = cfg.recipe
    results["best_epoch"] = read_json(run.best_score_file).get("epoch") if run.best_score_file.is_file() else None
    write_json(run.metrics_file, results)  # written last: its presence marks the run finished
    return results
