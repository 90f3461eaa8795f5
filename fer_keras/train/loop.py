"""One protocol run, end to end: data, model, one- or two-phase training, evaluation.

Pre-trained backbones are fine-tuned in two phases (PROTOCOL.md, 'Training'): the new
head is trained with the backbone frozen for up to ``phase1_epochs``; the best
checkpoint is reloaded, every layer is unfrozen and training continues until early
stopping. Models trained from scratch have one phase. Each phase is resumable; a
finished phase is never run again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from fer_keras.config import ConfigError, RunConfig, save_config
from fer_keras.data.class_weights import class_weights
from fer_keras.data.demo import ensure_demo
from fer_keras.data.legacy import EpochClock, make_legacy_dataset
from fer_keras.data.pipeline import eval_dataset, make_dataset
from fer_keras.data.readers import ImageSet, folder_classes
from fer_keras.data.splits import Splits, splits_for
from fer_keras.evaluate.evaluator import evaluate_set
from fer_keras.labels import check_same_classes
from fer_keras.models.preprocessing import preprocessing_mode
from fer_keras.registry import BACKBONE, build_model, get_spec
from fer_keras.runs import CLASSES_FILE, METRICS_FILE, MODEL_FILE, is_finished, read_json, write_json
from fer_keras.train.callbacks import protocol_callbacks
from fer_keras.train.strategy import describe, make_strategy

STATE_FILE = "state.json"
DEMO_SETS = ("demo", "demo_wild")


def _read_state(run_dir: Path) -> dict:
    path = run_dir / STATE_FILE
    return read_json(path) if path.is_file() else {"phases_done": []}


@dataclass
class RunContext:
    """What a training procedure works with: the run, its data, its strategy and its class weights."""

    cfg: RunConfig
    run_dir: Path
    splits: Splits
    strategy: tf.distribute.Strategy
    global_batch: int
    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset
    class_weight: dict[int, float] | None
    verbose: int = 2
    extra_callbacks: list[keras.callbacks.Callback] = field(default_factory=list)

    def read_state(self) -> dict:
        return _read_state(self.run_dir)

    def write_state(self, state: dict) -> None:
        write_json(self.run_dir / STATE_FILE, state)


def prepare_data(cfg: RunConfig) -> Splits:
    """Read and split the training data; check the cross-domain set's classes before any work."""
    if cfg.dataset in DEMO_SETS or cfg.crossdomain in DEMO_SETS:
        ensure_demo(cfg.data_root)
    splits = splits_for(cfg)
    for line in splits.report_lines():
        print(line)
    if cfg.cache and cfg.pipeline == "tfdata":
        print(f"note: the first epoch also decodes and caches {len(splits.train) + len(splits.val)} images, "
              "so it takes longer than the others")
    cross = cfg.crossdomain_dir()
    if cross is not None:
        if cross.is_dir():
            check_same_classes(splits.train.class_names, folder_classes(cross), test_name=str(cross))
        else:
            print(f"note: cross-domain set {cross} does not exist yet; `make crossdomain` will need it")
    return splits


def _datasets(cfg: RunConfig, splits: Splits, global_batch: int, run_dir: Path):
    """Training and validation data, and the callbacks the training data needs during fit."""
    val = eval_dataset(splits.val, cfg.res, global_batch, pipeline=cfg.pipeline, cache=cfg.cache)
    if cfg.pipeline == "legacy":
        # Phases done so far number the fit calls, on resume too.
        clock = EpochClock(lambda: len(_read_state(run_dir)["phases_done"]))
        return make_legacy_dataset(splits.train, cfg.res, global_batch, training=True, seed=cfg.seed,
                                   clock=clock), val, [clock]
    return (make_dataset(splits.train, cfg.res, global_batch, training=True, seed=cfg.seed, cache=cfg.cache,
                         sampling=cfg.sampling), val, [])


def compile_model(model: keras.Model, lr: float) -> None:
    # Keywords, not positions: Keras 3 reads a third positional argument as loss_weights.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="categorical_crossentropy",
                  metrics=["accuracy"])


def _versions() -> str:
    pkgs = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                  if d.metadata["Name"])
    return f"python=={platform.python_version()}\n" + "\n".join(pkgs) + "\n"


def _check_same_run(cfg: RunConfig, run_dir: Path) -> None:
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    import yaml

    old = yaml.safe_load(saved.read_text())
    new = cfg.model_dump(mode="json")
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
    if force and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    _check_same_run(cfg, run_dir)
    if is_finished(run_dir):
        print(f"{run_dir} is already finished; pass --force to train it again")
        return run_dir
    splits = prepare_data(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    strategy = make_strategy(cfg.devices)
    global_batch = cfg.batch * strategy.num_replicas_in_sync
    weights = class_weights(splits.train.counts(), cfg.balance, cfg.balance_cap)
    classes = list(splits.train.class_names)

    save_config(cfg, run_dir / "config.yaml")
    write_json(run_dir / CLASSES_FILE, classes)
    write_json(run_dir / "class_weights.json",
               {"balance": cfg.balance, "cap": cfg.balance_cap,
                "weights": {c: (weights or {}).get(i, 1.0) for i, c in enumerate(classes)}})
    write_json(run_dir / "data_summary.json", splits.summary())
    (run_dir / "versions.txt").write_text(_versions())

    train_ds, val_ds, data_callbacks = _datasets(cfg, splits, global_batch, run_dir)
    with strategy.scope():
        model = build_model(cfg.model, cfg.res, len(classes), pretrain=cfg.pretrain, pooling=cfg.pooling,
                            weights_dir=cfg.weights_dir, paper_faithful=cfg.paper_faithful,
                            **cfg.model_options)
    write_json(run_dir / "run_info.json", {
        **describe(strategy), "global_batch": global_batch, "params": int(model.count_params()),
        "preprocessing": preprocessing_mode(model), "paper_faithful": cfg.paper_faithful,
        "val_source": splits.val_source, "pipeline": cfg.pipeline, "tensorflow": tf.__version__,
        "keras": keras.__version__,
    })
    ctx = RunContext(cfg=cfg, run_dir=run_dir, splits=splits, strategy=strategy, global_batch=global_batch,
                     train_ds=train_ds, val_ds=val_ds, class_weight=weights, verbose=verbose,
                     extra_callbacks=data_callbacks + list(extra_callbacks or []))
    trainer = get_spec(cfg.model).trainer
    if trainer:
        resolve_trainer(trainer)(ctx, model)  # trains, then calls evaluate_run itself
    else:
        fit_protocol(ctx, model)
        evaluate_run(cfg, run_dir, splits, global_batch)
    return run_dir


def resolve_trainer(path: str) -> Callable[[RunContext, keras.Model], None]:
    """The training procedure named ``"module:function"`` in a ModelSpec."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def fit_protocol(ctx: RunContext, model: keras.Model) -> None:
    """The protocol's fit: one phase from scratch, or frozen-backbone then unfrozen phases."""
    cfg, run_dir = ctx.cfg, ctx.run_dir
    state = ctx.read_state()
    two_phase = cfg.pretrain != "scratch" and any(layer.name == BACKBONE for layer in model.layers)
    phases = [("frozen", cfg.phase1_epochs), ("main", cfg.epochs)] if two_phase else [("main", cfg.epochs)]
    started = time.time()
    for phase, epochs in phases:
        if phase in state["phases_done"]:
            continue
        with ctx.strategy.scope():
            if phase == "main" and two_phase:
                model.load_weights(run_dir / MODEL_FILE)  # best frozen-phase model, then unfreeze all
            if two_phase:
                model.get_layer(BACKBONE).trainable = phase == "main"
            compile_model(model, cfg.lr)
        print(f"[{cfg.resolved_run_id()}] phase {phase}: up to {epochs} epochs, global batch {ctx.global_batch}, "
              f"{len(ctx.splits.train)} train / {len(ctx.splits.val)} val images, class weights {cfg.balance}")
        model.fit(ctx.train_ds, validation_data=ctx.val_ds, epochs=epochs, class_weight=ctx.class_weight,
                  shuffle=False, callbacks=protocol_callbacks(cfg, run_dir, phase) + ctx.extra_callbacks,
                  verbose=ctx.verbose)
        state["phases_done"].append(phase)
        ctx.write_state(state)
    state["train_seconds"] = state.get("train_seconds", 0) + round(time.time() - started, 1)
    ctx.write_state(state)


def evaluate_run(cfg: RunConfig, run_dir: Path, splits: Splits, batch: int, *,
                 extra: Callable[[keras.Model, ImageSet], dict] | None = None) -> dict:
    """Evaluate the best checkpoint on the validation and test splits; write metrics.json last.

    ``extra(model, images)`` adds procedure-specific results to each split's entry (ESR's
    per-branch accuracies).
    """
    from fer_keras.runs import load_run_model, run_classes

    model, classes = load_run_model(run_dir), run_classes(run_dir)
    sets: dict[str, ImageSet] = {"val": splits.val}
    if splits.test is not None and not cfg.paper_faithful:
        sets["test"] = splits.test
    results = {tag: evaluate_set(model, images, cfg.res, model_classes=classes, pipeline=cfg.pipeline,
                                 out_dir=run_dir, tag=tag,
                                 batch=batch)
               for tag, images in sets.items()}
    if extra is not None:
        for tag, images in sets.items():
            results[tag].update(extra(model, images))
    results["run_id"] = cfg.resolved_run_id()
    results["best_epoch"] = read_json(run_dir / "best.json").get("epoch") if (run_dir / "best.json").is_file() else None
    write_json(run_dir / METRICS_FILE, results)  # written last: its presence marks the run finished
    return results
