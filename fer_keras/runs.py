"""The run folder: what a finished run leaves on disk, and how to read it back.

``runs/<run-id>/`` holds config.yaml (fully resolved), classes.json, class_weights.json,
data_summary.json, versions.txt, log.csv, best.keras (preprocessing inside),
metrics.json, confusion-matrix PNGs and, once evaluated, crossdomain_<set>.json.
:class:`Run` is the one place that names these files; the report reads only them.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_keras.config import RunConfig, make_config, read_yaml_mapping
from fer_keras.registry import import_zoo

MODEL_FILE = "best.keras"
METRICS_FILE = "metrics.json"
CLASSES_FILE = "classes.json"
#: Inside a phase's backup folder: the epoch backup's commit point.
RESUME_FILE = "resume.json"
#: What a key added to RunConfig later meant for runs saved before it, where that is not its new default:
#: their validation split was carved without grouping duplicates. Rebuilding such a run's splits (evaluation,
#: export, resuming) must give the split it trained with.
LEGACY_VALUES: dict[str, Any] = {"val_grouping": "none"}


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


def score_file(checkpoint: Path) -> Path:
    """The best-score file kept beside a checkpoint (monitored value and epoch), so a resumed run
    replaces the checkpoint only with a better model."""
    return Path(checkpoint).with_suffix(".json")


def crossdomain_tag(set_name: str) -> str:
    """How a cross-domain set's result and predictions are tagged in the run folder."""
    return f"crossdomain_{set_name}"


@dataclass(frozen=True)
class Run:
    """One run folder: the only place that knows its file names and how to read them back.

    Reading results needs no TensorFlow (the report relies on it); only :meth:`model` loads Keras.
    """

    dir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "dir", Path(self.dir))

    @property
    def name(self) -> str:
        return self.dir.name

    # what training writes first
    @property
    def config_file(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def classes_file(self) -> Path:
        return self.dir / CLASSES_FILE

    @property
    def class_weights_file(self) -> Path:
        return self.dir / "class_weights.json"

    @property
    def data_summary_file(self) -> Path:
        return self.dir / "data_summary.json"

    @property
    def versions_file(self) -> Path:
        return self.dir / "versions.txt"

    @property
    def run_info_file(self) -> Path:
        return self.dir / "run_info.json"

    # training progress
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def status_file(self) -> Path:
        return self.dir / "status.json"

    def log_file(self, phase: str) -> Path:
        return self.dir / ("log.csv" if phase == "main" else f"log_{phase}.csv")

    @property
    def learning_curve_file(self) -> Path:
        """Per epoch: training wall-clock seconds, accuracies, learning rate (``train.callbacks.WallClock``)."""
        return self.dir / "learning_curve.csv"

    def backup_dir(self, phase: str) -> Path:
        return self.dir / "backup" / phase

    def tensorboard_dir(self, phase: str) -> Path:
        return self.dir / "tensorboard" / phase

    # results
    @property
    def model_file(self) -> Path:
        return self.dir / MODEL_FILE

    @property
    def best_score_file(self) -> Path:
        return score_file(self.model_file)

    @property
    def metrics_file(self) -> Path:
        return self.dir / METRICS_FILE

    def confusion_stem(self, tag: str) -> Path:
        """``<stem>_counts.png`` and ``<stem>_normalized.png``: the confusion matrices of one set."""
        return self.dir / f"confusion_{tag}"

    def predictions_file(self, tag: str) -> Path:
        return self.dir / f"predictions_{tag}.csv"

    def crossdomain_file(self, set_name: str) -> Path:
        return self.dir / f"{crossdomain_tag(set_name)}.json"

    def crossdomain_files(self) -> dict[str, Path]:
        """Every cross-domain result, by set name, in file order."""
        prefix = crossdomain_tag("")
        return {f.stem.removeprefix(prefix): f for f in sorted(self.dir.glob(f"{prefix}*.json"))}

    def crossdomain_predictions(self) -> list[Path]:
        return sorted(self.dir.glob(f"predictions_{crossdomain_tag('')}*.csv"))

    def export_file(self, tag: str) -> Path:
        return self.dir / f"export_{tag}.json"

    def tflite_file(self, tag: str) -> Path:
        return self.dir / f"model_{tag}.tflite"

    # readers
    def is_finished(self) -> bool:
        return self.metrics_file.is_file() and self.model_file.is_file()

    def config_values(self) -> dict[str, Any]:
        """The saved config as written, unvalidated ({} before training wrote it): for readers that
        must not fail on runs from older versions (the report, the same-run check)."""
        return read_yaml_mapping(self.config_file, "run config") if self.config_file.is_file() else {}

    def config(self, *, data_root: Path | None = None) -> RunConfig:
        """The saved config, validated, with ``data_root`` replaced when the data moved since training."""
        values = {**LEGACY_VALUES, **read_yaml_mapping(self.config_file, "run config")}
        if data_root is not None:
            values["data_root"] = str(data_root)
        return make_config(values, source=str(self.config_file))

    def classes(self) -> list[str]:
        """The order of the stored model's outputs; without it no prediction can be named."""
        if not self.classes_file.is_file():
            raise ValueError(f"{self.classes_file} does not exist: the order of the model's outputs is unknown, "
                             "so its predictions cannot be matched to class names")
        return list(read_json(self.classes_file))

    def metrics(self) -> dict[str, Any]:
        return read_json(self.metrics_file)

    def run_info(self) -> dict[str, Any]:
        return read_json(self.run_info_file) if self.run_info_file.is_file() else {}

    def status(self) -> dict[str, Any]:
        """The grid's record of what happened to the run; {} when none (or unreadable)."""
        try:
            return read_json(self.status_file) if self.status_file.is_file() else {}
        except ValueError:
            return {}

    def model(self):
        """The run's best model, loaded with Keras' safe_mode on."""
        if not self.model_file.is_file():
            raise FileNotFoundError(f"{self.model_file} does not exist: the run has not saved a model yet")
        return load_model_file(self.model_file)

    def float32_model(self, trained=None):
        """The best model (``trained``, if already loaded) computing in float32 whatever the run's mixed
        precision: TFLite cannot convert bfloat16 ops, and many CPUs run them slowly. Same weights."""
        trained = trained if trained is not None else self.model()
        if all(layer.dtype_policy.compute_dtype == "float32" for layer in trained.layers):
            return trained
        # Rebuilt from the model's own config with every dtype policy set to float32, not from the
        # registry: the saved graph already holds what the run built (pre-training layout, options,
        # paper-faithful input), and no weight file has to be found again.
        model = type(trained).from_config(_float32_policies(trained.get_config()))
        model.set_weights(trained.get_weights())
        return model


class ModelFileError(ValueError):
    """A .keras file that exists but cannot be read as a Keras archive (Keras itself says 'File not found')."""


def load_model_file(path: Path):
    """A ``.keras`` model loaded with Keras' safe_mode on; a truncated or corrupt file raises
    :class:`ModelFileError` saying so, with its size, instead of Keras' 'File not found'."""
    import keras  # here: reading a run's results must not import TensorFlow

    path = Path(path)
    size = path.stat().st_size
    broken = f"{path} ({size:,} bytes) is not a readable Keras archive: probably truncated or corrupt"
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # every member's checksum: a file cut short or overwritten
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise ModelFileError(f"{broken} ({err}); copy or save it again") from None
    if damaged is not None:
        raise ModelFileError(f"{broken} ({damaged} fails its checksum); copy or save it again")
    import_zoo()  # registers the custom layers the file refers to
    return keras.models.load_model(path, safe_mode=True, compile=False)


def _float32_policies(config):
    """A Keras config with every ``DTypePolicy`` (``mixed_bfloat16``, ``mixed_float16``) made float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            return {**config, "config": {**config.get("config", {}), "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config


def run_names(run_dirs: list[Path], root: Path | None = None) -> list[str]:
    """How runs are named in tables: the folder name (the run id), or, where two folders share one
    (runs/fast16/<id> and runs/fast36/<id>: other epochs, other lr), the path, relative to ``root`` if given."""
    counts = Counter(Path(d).name for d in run_dirs)
    return [Path(d).name if counts[Path(d).name] == 1
            else (Path(d).relative_to(root) if root is not None else Path(d)).as_posix() for d in run_dirs]


def find_runs(root: Path) -> list[Path]:
    """Finished runs under ``root`` (any depth), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(METRICS_FILE) if Run(p.parent).is_finished())
