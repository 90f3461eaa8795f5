"""Model registry: one decorator per architecture, one way to build any of them.

Every builder has the same signature::

    builder(input_shape, num_classes, *, pretrain, pooling, weights_dir, **options) -> keras.Model

and returns a model whose first layers carry its own input normalisation (it takes
raw 0-255 RGB), whose last layer is named ``predictions`` and, for pre-trained
backbones, whose backbone is a nested model named ``backbone``. The tensor its head
consumes is the output of a layer named ``features`` (in ensembles whose branches each
end in a classifier: ``branch1_features``, ``branch2_features``, ...), so freezing,
Grad-CAM, embeddings and fine-tuning find the feature extractor the same way in every
family (``fer_keras.models.features.feature_extractor``).

The table of models (``fer_keras.models.catalog``) names builders as ``"module:function"``
strings, so looking a model up never imports TensorFlow; only building one does. Each row
also declares the ``**options`` its builder and trainer take (:class:`Option`): configs,
grids and :func:`build_model` check options against it, and it alone holds their defaults.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

PRETRAINS = ("scratch", "imagenet", "vggface")
POOLINGS = ("gap", "flatten")
BACKBONE = "backbone"
PREDICTIONS = "predictions"
FEATURES = "features"


@dataclass(frozen=True)
class Option:
    """One option a model's builder or trainer takes (``model_options`` of a run)."""

    #: A type pydantic checks (``int``, ``Literal["a", "b"]``, ``Annotated[int, Field(ge=1)]`` ...).
    type: Any
    default: Any
    description: str


class OptionError(ValueError):
    """``model_options`` a model does not take, or of the wrong type."""


@dataclass(frozen=True)
class ModelSpec:
    """What the suite knows about an architecture before building it."""

    name: str
    #: ``"module:function"``, imported on first build (a callable is taken as it is).
    builder: str | Callable[..., Any]
    family: str
    paper_name: str
    description: str
    min_resolution: int = 32
    max_resolution: int | None = None
    pretrains: tuple[str, ...] = ("scratch",)
    default_pooling: str = "gap"
    #: Parameter counts with a 7-class head at 48 and 224 px (checked by the tests).
    params: dict[int, int] = field(default_factory=dict)
    #: Resolutions the tests build it at (the smallest valid one at least).
    test_resolutions: tuple[int, ...] = ()
    #: The options the builder (and trainer) take, with their one default; none for most models.
    options: dict[str, Option] = field(default_factory=dict)
    #: ``"module:function"`` of a training procedure replacing the protocol's fit (ESR's progressive
    #: schedule, triplet loss + SVM); None for the protocol's one- or two-phase fit.
    trainer: str | None = None
    #: The validation score (mode max) that procedure chooses its checkpoint by, when it is its own and not the
    #: run's ``checkpoint_metric`` (the triplet embedding's centroid score); None: the run's.
    checkpoint_monitor: str | None = None
    #: Whether a saved model holds only Keras' own classes, so plain ``keras.models.load_model``
    #: reads it without importing fer_keras (checked by the tests).
    portable: bool = True

    def __post_init__(self) -> None:
        for p in self.pretrains:
            if p not in PRETRAINS:
                raise ValueError(f"model {self.name!r}: unknown pretrain {p!r}; known: {PRETRAINS}")

    def supports(self, res: int) -> bool:
        return res >= self.min_resolution and (self.max_resolution is None or res <= self.max_resolution)

    def resolution_text(self) -> str:
        if self.max_resolution is None:
            return f"{self.min_resolution} px or more"
        return f"{self.min_resolution} to {self.max_resolution} px"

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` checked against :attr:`options` (values converted to their types), defaults filled in.

        Raises :class:`OptionError`, one line naming the model, the key, the closest valid key and
        the valid ones, before any TensorFlow work.
        """
        valid = sorted(self.options)
        for key in given:
            if key not in self.options:
                if not valid:
                    raise OptionError(f"model {self.name!r} takes no options, got {key!r}")
                close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise OptionError(f"model {self.name!r} has no option {key!r}{hint} "
                                  f"Valid options: {', '.join(valid)}")
        resolved = {}
        for key, option in self.options.items():
            if key not in given:
                resolved[key] = option.default
                continue
            try:
                resolved[key] = TypeAdapter(option.type).validate_python(given[key])
            except ValidationError as err:
                why = "; ".join(e["msg"] for e in err.errors())
                raise OptionError(f"model {self.name!r}, option {key!r} ({option.description}): {why} "
                                  f"(got {given[key]!r})") from None
        return resolved

    def load_builder(self) -> Callable[..., Any]:
        """The builder function, importing its module (and TensorFlow) now."""
        return import_object(self.builder) if isinstance(self.builder, str) else self.builder

    def load_trainer(self) -> Callable[..., Any] | None:
        """The custom training procedure, or None for the protocol's fit."""
        return import_object(self.trainer) if self.trainer else None


def import_object(path: str) -> Any:
    """The object a ``"module:name"`` string names (builders, trainers, grid train functions)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, ModelSpec] = {}


@cache
def _load_catalog() -> None:
    # Imported here: the catalog's rows are ModelSpecs from this module.
    from fer_keras.models.catalog import SPECS

    for spec in SPECS:
        if spec.name in _REGISTRY:
            raise ValueError(f"model {spec.name!r} is registered twice")
        _REGISTRY[spec.name] = spec


def _registry() -> dict[str, ModelSpec]:
    _load_catalog()
    return _REGISTRY


def import_zoo() -> None:
    """Import every builder module, registering the custom Keras classes a saved model may name."""
    for spec in _registry().values():
        spec.load_builder()


def list_models() -> list[str]:
    return sorted(_registry())


def get_spec(name: str) -> ModelSpec:
    """Look a model up; unknown names fail with the closest registered name."""
    registry = _registry()
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name.lower(), registry, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} Registered: {', '.join(sorted(registry))}")


def validate_request(name: str, res: int, pretrain: str = "scratch", pooling: str | None = None) -> ModelSpec:
    """Check a (model, resolution, initialisation, pooling) request before any work is done."""
    spec = get_spec(name)
    if not spec.supports(res):
        raise ValueError(
            f"model {name!r} cannot take {res}x{res} inputs; it works at {spec.resolution_text()}."
        )
    if pretrain not in spec.pretrains:
        raise ValueError(
            f"model {name!r} has no {pretrain!r} initialisation; it supports {', '.join(spec.pretrains)}"
        )
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return spec


def build_model(
    name: str,
    res: int = 48,
    num_classes: int = 7,
    *,
    pretrain: str = "scratch",
    pooling: str | None = None,
    weights_dir: str | Path | None = None,
    paper_faithful: bool = False,
    color: str = "rgb",
    equalize: bool = False,
    **options: Any,
):
    """Build a registered model for ``res`` x ``res`` RGB input on the 0-255 scale.

    ``paper_faithful`` reproduces the paper's notebooks, which fed 1/255-scaled RGB to
    every pre-trained backbone instead of the normalisation its weights expect; it is
    passed to builders of pre-trained models only. ``color`` 'grey' averages the input's
    channels inside the model first and ``equalize`` histogram-equalises the input there
    (:func:`fer_keras.models.preprocessing.adapt_input`).
    """
    spec = validate_request(name, res, pretrain, pooling)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    options = spec.resolve_options(options)  # the builder always gets every option, from the schema
    if pretrain != "scratch":
        options["paper_faithful"] = paper_faithful
    if color not in ("rgb", "grey"):
        raise ValueError(f"color must be 'rgb' or 'grey', got {color!r}")
    model = spec.load_builder()(
        (res, res, 3),
        num_classes,
        pretrain=pretrain,
        pooling=pooling or spec.default_pooling,
        weights_dir=Path(weights_dir) if weights_dir else None,
        **options,
    )
    if color == "grey" or equalize:
        from fer_keras.models.preprocessing import adapt_input

        model = adapt_input(model, grey=color == "grey", equalize=equalize)
    return model
