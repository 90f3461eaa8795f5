"""Run configuration: one validated object holding every protocol knob of one run.

Configs are YAML files (``yaml.safe_load`` only) with at most one level of
``include:``; command-line overrides are applied last. Unknown keys fail with the
closest known key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from fer_keras.data.groups import compile_pattern
from fer_keras.evaluate.tta import TTA, ZOOM_TEXT
from fer_keras.registry import get_spec

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: Protocol defaults that CLIs and library signatures share with RunConfig (one source).
DEFAULT_RUNS = Path("runs")
DEFAULT_SEED = 42


class ConfigError(ValueError):
    """A configuration file or override that cannot be used as it is."""


class RunConfig(BaseModel):
    """Every setting of one training run; the resolved copy is saved in the run folder."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # what to train
    model: str = Field("resnet18", description="registered model; fer-models lists them")
    res: int = Field(48, ge=16, le=1024, description="input size in pixels")
    pretrain: Literal["scratch", "imagenet", "vggface"] = Field("scratch", description="initialisation")
    pooling: Literal["gap", "flatten"] | None = Field(None, description="backbone pooling (null: the model's own)")
    model_options: dict[str, Any] = Field(default_factory=dict, description="the model's options, e.g. "
                                          "'{branches: 4}'; each row of fer_keras/models/catalog.py declares them")
    weights_dir: Path | None = Field(None, description="folder of pre-trained weight files "
                                          "(else $FER_KERAS_WEIGHTS, ~/.keras/models)")
    # data
    dataset: str = Field("demo", description="dataset folder under data_root, or a path")
    data_root: Path = Field(Path("data"), description="folder holding the datasets")
    crossdomain: str | None = Field("demo_wild", description="balanced test set for fer-crossdomain (none: no set)")
    limit_per_class: int | None = Field(
        None, ge=1, description="quick runs: at most this many train and validation images per class "
        "(test untouched); part of the run id"
    )
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share carved from train when there is no val/")
    val_grouping: Literal["content", "none"] = Field(
        "content", description="carving validation from train: content keeps exact and near duplicate images "
        "(SHA-256, perceptual hash) on one side, so no validation image is a copy of a training one; none: "
        "plain stratified (the split of runs saved before this option)")
    folds: int | None = Field(None, ge=2, description="k-fold cross-validation: number of stratified folds")
    fold: int | None = Field(None, ge=0, description="which fold is the test split (0 .. folds-1)")
    cv_group: str | None = Field(
        None, description="regex with one group read from each file name, e.g. '^(S\\d+)_' (the CK+ subject): "
        "folds and the carved validation split keep each group whole; run ids get _grouped")
    pipeline: Literal["tfdata", "legacy"] = Field("tfdata", description="legacy: Keras' ImageDataGenerator")
    sampling: Literal["shuffle", "weighted"] = Field(
        "shuffle", description="weighted: draw training classes uniformly (instead of class weights; tfdata only)"
    )
    cache: bool = Field(True, description="keep decoded images in memory after the first epoch")
    # class balancing
    balance: Literal["none", "simple", "conservative"] = Field(
        "conservative", description="class weights: simple = max count / count; conservative = simple, capped"
    )
    balance_cap: float = Field(3.0, gt=1, description="cap of the conservative class weights")
    # optimisation (PROTOCOL.md, 'Training')
    epochs: int = Field(200, ge=1, description="most epochs (early stopping ends sooner)")
    phase1_epochs: int = Field(30, ge=1, description="most frozen-backbone epochs of a pre-trained model")
    batch: int = Field(32, ge=1, description="per replica; global batch = batch x replicas")
    lr: float = Field(1e-4, gt=0, description="learning rate (Adam/AdamW; the cosine schedule's peak)")
    reduce_lr_patience: int | None = Field(10, ge=1, description="ReduceLROnPlateau patience; null: off")
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1)
    min_lr: float = Field(1e-10, ge=0, description="floor of the learning rate (plateau) / end of the cosine")
    early_stopping_patience: int | None = Field(20, ge=1, description="EarlyStopping patience; null: off")
    train_minutes: float | None = Field(
        None, gt=0, description="wall-clock budget of training (every phase and restart): no epoch starts that "
        "would end past it, at least one a phase; one budget for models whose epochs cost very different times; "
        "null: none (epochs and early stopping end the run)")
    # Not the protocol: options of our fast recipe (configs/fast.yaml). Each one needs recipe 'fast'.
    recipe: Literal["protocol", "fast"] = Field(
        "protocol", description="protocol: the paper's training; fast: ours (recorded in the run id and report)")
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay (adamw; not biases or norms)")
    lr_schedule: Literal["plateau", "cosine"] = Field(
        "plateau", description="plateau: ReduceLROnPlateau; cosine: linear warm-up, then cosine decay to min_lr")
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up from 0 to lr (cosine only)")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    loss: Literal["crossentropy", "logit_adjusted"] = Field(
        "crossentropy", description="logit_adjusted: cross-entropy of softmax(log p + loss_tau * log training "
        "prior) (Menon et al. 2021), for a balanced target")
    loss_tau: float = Field(1.0, ge=0, description="tau of the logit-adjusted loss")
    color: Literal["rgb", "grey", "auto"] = Field(
        "rgb", description="model input: rgb as given, or grey (the mean of R, G, B in all three channels, inside "
        "the model, so colour photos meet the weights grey training reached); auto: grey when the training "
        "images are grey")
    equalize: bool = Field(
        False, description="model input: histogram-equalise each image inside the model (FER2013's faces were "
        "equalised before release, photos in the wild are not), so every set meets the weights the same way")
    ema: bool = Field(False, description="validate, checkpoint and evaluate an EMA of the weights")
    ema_momentum: float = Field(0.99, gt=0, lt=1, description="EMA decay per step")
    ema_batchnorm: Literal["recompute", "raw"] = Field(
        "recompute", description="BatchNorm statistics of the EMA model: recompute (under the EMA weights, on "
        "un-augmented training images) or raw (those gathered under the raw weights, Keras' default)")
    batchnorm_recompute: bool = Field(
        False, description="before every validation (so every checkpoint) set the BatchNorm statistics to the mean "
        "over up to 4096 un-augmented training images under the current weights: Keras' moving averages lag the "
        "weights and are gathered on augmented batches")
    tta_flip: bool = Field(False, description="evaluation: average the probabilities of image and mirror image")
    tta_zoom: bool = Field(False, description=f"evaluation: also average those of {ZOOM_TEXT} of each")
    random_erasing: float = Field(0.0, ge=0, le=1, description="training augmentation: probability of erasing "
                                  "a random rectangle of each image (Zhong et al. 2020); needs pipeline tfdata")
    checkpoint_metric: Literal["accuracy", "balanced_accuracy"] = Field(
        "accuracy", description="the validation score that chooses the best checkpoint: val_accuracy, or "
        "val_balanced_accuracy (the mean recall over classes) for a balanced target")
    # speed: same recipe, different arithmetic or compilation (allowed in protocol runs)
    mixed_precision: Literal["none", "auto", "mixed_bfloat16", "mixed_float16"] = Field(
        "none", description="Keras dtype policy; auto: mixed_float16 on a GPU with tensor cores, mixed_bfloat16 on "
        "a CPU with native bfloat16, else none (float32); the softmax stays float32, float16 gets loss scaling")
    jit_compile: bool | Literal["auto"] = Field("auto", description="XLA; auto: Keras' choice (on for GPUs)")
    steps_per_execution: int = Field(1, ge=1)
    seed: int = DEFAULT_SEED
    deterministic: bool = Field(
        False, description="enable TensorFlow's op determinism (reproducible GPU runs; slower on GPU)"
    )
    devices: list[str] | None = Field(
        None, description="explicit devices for MirroredStrategy, e.g. ['/cpu:0', '/cpu:1']"
    )
    # bookkeeping
    out: Path = Field(DEFAULT_RUNS, description="folder of run folders")
    run_id: str | None = Field(None, description="run folder name (unset: derived from the settings)")
    tensorboard: bool = Field(True, description="write TensorBoard logs")
    paper_faithful: bool = Field(
        False,
        description="reproduce the paper's notebooks: validate on the test folder and feed 1/255 "
        "RGB to every backbone; labelled as such in the run and the report",
    )

    @model_validator(mode="after")
    def _one_balancing(self) -> RunConfig:
        if self.sampling == "weighted" and self.pipeline != "tfdata":
            raise ValueError("sampling 'weighted' needs pipeline 'tfdata'")
        if self.sampling == "weighted" and self.balance != "none":
            raise ValueError(f"sampling 'weighted' already balances the classes; set balance to 'none' "
                             f"(got {self.balance!r}) so minority classes are not weighted twice")
        return self

    @model_validator(mode="after")
    def _recipe_options(self) -> RunConfig:
        if self.lr_schedule == "cosine" and self.reduce_lr_patience is not None:
            raise ValueError("lr_schedule 'cosine' sets the learning rate every step, so ReduceLROnPlateau "
                             f"cannot also change it: set reduce_lr_patience to null (got {self.reduce_lr_patience})")
        if self.lr_schedule == "cosine" and self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})")
        if self.warmup_epochs and self.lr_schedule != "cosine":
            raise ValueError("warmup_epochs needs lr_schedule 'cosine'")
        if self.train_minutes is not None and self.lr_schedule == "cosine":
            raise ValueError("train_minutes ends a run at a time, not after its epochs, and the cosine schedule "
                             "decays over the epochs: it would stop before the rate anneals; use lr_schedule "
                             "'plateau' or set epochs to what fits the time")
        if self.train_minutes is not None and self.resolved_options().get("schedule") == "progressive":
            raise ValueError("train_minutes would leave the last branches of esr's progressive schedule untrained "
                             "(each stage grows the one before); use schedule 'joint' or an epoch budget")
        if self.random_erasing and self.pipeline != "tfdata":
            raise ValueError("random_erasing needs pipeline 'tfdata' (the legacy generator has no such option)")
        if self.batchnorm_recompute and self.ema:
            raise ValueError("batchnorm_recompute with ema: the EMA model's BatchNorm statistics are already "
                             "recomputed for its weights with ema_batchnorm 'recompute' (with 'raw' you asked for "
                             "the raw ones); set ema to false or drop batchnorm_recompute")
        if self.weight_decay and self.optimizer != "adamw":
            raise ValueError(f"weight_decay {self.weight_decay} needs optimizer 'adamw' (got {self.optimizer!r})")
        own = get_spec(self.model).checkpoint_monitor
        if own is not None and self.checkpoint_metric != "accuracy":
            raise ValueError(f"{self.model} chooses its checkpoint by {own} (its own training procedure); "
                             f"checkpoint_metric {self.checkpoint_metric!r} does not apply to it: leave it at "
                             "'accuracy'")
        if self.recipe == "protocol":
            ours = [k for k, v in self.fast_options().items() if v != RunConfig.model_fields[k].default]
            if ours:
                raise ValueError(f"{', '.join(ours)} are not the protocol's; set recipe to 'fast' so the run "
                                 "is labelled as ours")
        return self

    def tta(self) -> TTA:
        """The test-time augmentation this run is evaluated (and its model applied) with."""
        return TTA.of(self.model_dump())

    def checkpoint_monitor(self) -> str:
        """The logged validation score (mode max) that chooses the best checkpoint: ``val_`` + checkpoint_metric,
        or the model's own when its training procedure has one."""
        return get_spec(self.model).checkpoint_monitor or f"val_{self.checkpoint_metric}"

    def fast_options(self) -> dict[str, Any]:
        """The fast recipe's options that change what is learned or measured (protocol runs leave them off)."""
        keys = ("optimizer", "weight_decay", "lr_schedule", "warmup_epochs", "label_smoothing", "ema", "tta_flip",
                "tta_zoom", "random_erasing", "loss", "color", "equalize", "checkpoint_metric",
                "batchnorm_recompute")
        return {k: getattr(self, k) for k in keys}

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        get_spec(name)
        return name

    @field_validator("model_options")
    @classmethod
    def _known_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Kept as given (the saved config and the run id stay as written); checked against the model's
        # schema here, so a typo fails at load_config and grid expansion, not inside a builder.
        if "model" in info.data:  # else the model itself was invalid, and that error is reported
            get_spec(info.data["model"]).resolve_options(options)
        return options

    def resolved_options(self) -> dict[str, Any]:
        """The model's options converted to their types, every default filled in from its schema."""
        return get_spec(self.model).resolve_options(self.model_options)

    @field_validator("crossdomain", mode="before")
    @classmethod
    def _no_crossdomain(cls, value: object) -> object:
        # "null"/"none" from the command line mean: no cross-domain set.
        return None if isinstance(value, str) and value.strip().lower() in ("", "null", "none") else value

    @model_validator(mode="after")
    def _fold_pair(self) -> RunConfig:
        # A fold without a fold count (or the reverse) would silently train on the plain split.
        if (self.folds is None) != (self.fold is None):
            raise ValueError(f"folds and fold go together (got folds={self.folds}, fold={self.fold})")
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"fold must be below folds={self.folds}, got {self.fold}")
        if self.folds is not None and self.paper_faithful:
            raise ValueError("cross-validation folds cannot be combined with paper_faithful")
        if self.cv_group is not None:
            compile_pattern(self.cv_group)
        return self

    def resolved_run_id(self) -> str:
        """Readable, stable id: model_res_dataset_balance_pretrain_seed, plus _lim<n> for a limited run (so a
        quick run never overwrites or blocks the full one), _paper, _grouped with cv_group, _f<fold> in
        cross-validation and _fast for the fast recipe."""
        if self.run_id:
            return self.run_id
        dataset = Path(self.dataset).name or "data"
        tag = f"_lim{self.limit_per_class}" if self.limit_per_class else ""
        tag += "_paper" if self.paper_faithful else ""
        tag += "_grouped" if self.cv_group else ""
        tag += f"_f{self.fold}" if self.folds is not None else ""
        tag += "_fast" if self.recipe == "fast" else ""
        return f"{self.model}_{self.res}_{dataset}_{self.balance}_{self.pretrain}_s{self.seed}{tag}"

    def run_dir(self) -> Path:
        return self.out / self.resolved_run_id()

    def dataset_dir(self) -> Path:
        return _under(self.data_root, self.dataset)

    def crossdomain_dir(self) -> Path | None:
        return _under(self.data_root, self.crossdomain) if self.crossdomain else None


def _under(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() or path.exists() and len(path.parts) > 1 else root / name


def read_yaml_mapping(path: Path, kind: str = "config file", error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """A YAML file (``yaml.safe_load``) that must hold a mapping; every failure names the file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise error(f"{kind} {path} does not exist") from None
    except yaml.YAMLError as err:
        raise error(f"{kind} {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise error(f"{kind} {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


#: Top-level keys only an experiment grid has (``fer_keras.grid.spec``); a list under ``include:`` is a grid's too.
GRID_KEYS = ("base", "fixed", "grid", "exclude", "cv", "unsupported")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config with its (single-level) ``include:`` merged underneath it."""
    path = Path(path)
    data = read_yaml_mapping(path)
    grid_keys = [k for k in GRID_KEYS if k in data] + (["include"] if isinstance(data.get("include"), list) else [])
    if grid_keys:
        raise ConfigError(f"{path} is an experiment grid (it has {', '.join(map(repr, grid_keys))}), not a run "
                          f"config: run its points with `python -m fer_keras.grid {path}` (or make grid GRID={path}; "
                          "--dry-run lists them)")
    include = data.pop("include", None)
    if include:
        base = read_yaml_mapping((path.parent / include) if not Path(include).is_absolute() else Path(include))
        if "include" in base:
            raise ConfigError(f"{include} (included by {path}) includes another file; one level only")
        data = {**base, **data}
    return data


def make_config(values: dict[str, Any], *, source: str = "config") -> RunConfig:
    """Validate ``values`` into a RunConfig, turning pydantic errors into one clear message."""
    known = set(RunConfig.model_fields)
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key {key!r} in {source}{hint} Known keys: {', '.join(sorted(known))}")
    try:
        return RunConfig(**values)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {_message(e)}" for e in err.errors()
        )
        raise ConfigError(f"invalid {source}: {problems}") from None


def _message(error: Any) -> str:
    # A model option's error already names the key and value (registry.OptionError): shown as it is.
    if error["type"] == "value_error" and str(error["msg"]).startswith("Value error, model "):
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{error['msg']} (got {error.get('input')!r})"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults < config file (with its include) < explicit overrides (None values ignored)."""
    values = read_config_file(path) if path else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return make_config(values, source=str(path or "overrides"))


def save_config(cfg: RunConfig, path: Path) -> None:
    """Written atomically: a half-written config would make the run look like another one and refuse to resume."""
    from fer_keras.runs import write_text

    write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=True))
