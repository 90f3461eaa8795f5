"""Offline lookup of pre-trained weight files.

Nothing here downloads: machines that train FER models are often offline, and a
hung download is worse than a clear error. Users drop the files in the cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """A pre-trained weight file is not in the local cache."""


def weights_cache(weights_dir: str | Path | None = None) -> Path:
    """The folder searched for weight files: argument, $FER_KERAS_WEIGHTS, or Keras' own cache."""
    if weights_dir:
        return Path(weights_dir).expanduser()
    if os.environ.get("FER_KERAS_WEIGHTS"):
        return Path(os.environ["FER_KERAS_WEIGHTS"]).expanduser()
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
    return keras_home / "models"


def find_weights(filename: str, source_url: str, weights_dir: str | Path | None = None) -> Path:
    """Return the path of ``filename`` in the cache, or fail naming the file and its source."""
    folder = weights_cache(weights_dir)
    path = folder / filename
    if path.is_file():
        return path
    raise MissingWeightsError(
        f"pre-trained weights {filename!r} are not in the weights cache {folder}. "
        f"Download them from {source_url} and save them as {path} "
        f"(or point FER_KERAS_WEIGHTS / --weights-dir at the folder holding them). "
        f"Training from scratch (PRETRAIN=scratch) needs no file."
    )
