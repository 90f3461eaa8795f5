"""fer_keras: the BTFER facial-expression benchmarking protocol as a tested Keras 3 package.

``list_models``, ``build_model`` and ``load_run`` are imported on first use, so
``import fer_keras`` stays light (no TensorFlow until a model is needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["build_model", "list_models", "load_run"]

_LAZY = {"build_model": "fer_keras.registry", "list_models": "fer_keras.registry",
         "load_run": "fer_keras.predict.predictor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fer_keras' has no attribute {name!r}")
