"""The run folder: what a finished run leaves on disk, and how to read it back.

``runs/<run-id>/`` holds config.yaml (fully resolved), classes.json, class_weights.json,
data_summary.json, versions.txt, log.csv, best.keras (preprocessing inside),
metrics.json, confusion-matrix PNGs and, once evaluated, crossdomain_<set>.json.
The report reads only these files.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_keras.registry import import_zoo

if TYPE_CHECKING:
    from fer_keras.config import RunConfig

MODEL_FILE = "best.keras"
METRICS_FILE = "metrics.json"
CLASSES_FILE = "classes.json"


def check_writable(folder: Path) -> None:
    """Raise ``OSError`` now, before any data is read, when run folders cannot be written there."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write_test{os.getpid()}-{threading.get_ident()}"
    try:
        probe.write_bytes(b"")
    finally:
        probe.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write atomically, so a killed process never leaves half a result."""
    # pid and thread in the name: concurrent writers never share a temporary file.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def is_finished(run_dir: Path) -> bool:
    return (run_dir / METRICS_FILE).is_file() and (run_dir / MODEL_FILE).is_file()


def find_runs(root: Path) -> list[Path]:
    """Finished runs under ``root`` (any depth), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(METRICS_FILE) if is_finished(p.parent))


def crossdomain_file(run_dir: Path, set_name: str) -> Path:
    return run_dir / f"crossdomain_{set_name}.json"


def run_config(run_dir: Path, *, data_root: Path | None = None) -> RunConfig:
    """The run's saved config, with ``data_root`` replaced when the data moved since training."""
    import yaml

    from fer_keras.config import make_config

    path = Path(run_dir) / "config.yaml"
    values = yaml.safe_load(path.read_text())
    if data_root is not None:
        values["data_root"] = str(data_root)
    return make_config(values, source=str(path))


def run_classes(run_dir: Path) -> list[str]:
    """The order of the stored model's outputs; without it no prediction can be named."""
    path = Path(run_dir) / CLASSES_FILE
    if not path.is_file():
        raise ValueError(f"{path} does not exist: the order of the model's outputs is unknown, "
                         "so its predictions cannot be matched to class names")
    return list(read_json(path))


def load_run_model(run_dir: Path):
    """The run's best model, loaded with Keras' safe_mode on."""
    import keras

    import_zoo()  # registers the custom layers the file refers to
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run has not saved a model yet")
    return keras.models.load_model(path, safe_mode=True, compile=False)
