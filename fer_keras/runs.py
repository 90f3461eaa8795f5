"""The run folder: what a finished run leaves on disk, and how to read it back.

``runs/<run-id>/`` holds config.yaml (fully resolved), classes.json, class_weights.json,
data_summary.json, versions.txt, log.csv, best.keras (preprocessing inside),
metrics.json, confusion-matrix PNGs and, once evaluated, crossdomain_<set>.json.
The report reads only these files.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


class WriteError(OSError):
    """A write failed and left nothing half-written under the file's name (``filename``)."""


#: Marks the temporary files of :func:`replacing`; a file with it in its name was never committed.
TMP_MARK = ".tmp"


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path`` to write; it replaces ``path`` only once the write succeeded.

    A killed process or a full disk therefore never leaves half a file under a name that is read
    back (a truncated best.keras, an empty log.csv). On failure the temporary file is removed, to
    give back the space, and a :class:`WriteError` names ``path`` (zip writers name the temporary
    file or nothing).
    """
    path = Path(path)
    # pid and thread in the name: concurrent writers never share a temporary file; the suffix is
    # kept because Keras picks the format from it.
    tmp = path.with_name(f".{path.stem}{TMP_MARK}{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteError(err.errno, err.strerror or str(err), str(path)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: errno values of a full file system (or quota): every later write there fails too.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_error_line(err: OSError, *, what: str = "the run") -> str:
    """One line for a failed read or write: the file and the cause, and for a full or read-only file
    system what to do (every write is atomic, so starting the same command again resumes)."""
    where = f"{err.filename}: " if err.filename else ""
    line = f"{where}{err.strerror or err}"
    again = f"{what} stopped at its last saved point: {{}} and run the same command again"
    if err.errno in DISK_FULL:
        return f"{line}; {again.format('free some space')}"
    if isinstance(err, WriteError) or err.errno == errno.EROFS:
        return f"{line}; {again.format('make the folder writable')}"
    return line


def remove_partial_writes(folder: Path) -> None:
    """Delete temporary files a killed writer left under ``folder`` (they hold no committed result)."""
    for tmp in Path(folder).rglob(f".*{TMP_MARK}*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write atomically, so a killed process never leaves half a file."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    """Write atomically, so a killed process never leaves half a result."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str))


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

    import fer_keras.models  # noqa: F401  - registers the custom layers the file refers to

    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run has not saved a model yet")
    return keras.models.load_model(path, safe_mode=True, compile=False)
