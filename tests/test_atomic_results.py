"""Evaluation results (confusion-matrix PNGs, predictions CSV) are written atomically: a full disk or a
read-only runs folder leaves the previous files whole and no temporary file, and the error names the file."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import matplotlib.figure
import pytest
from PIL import Image
from stored_runs import brightness_model, write_set

from fer_keras.data.readers import read_class_folders
from fer_keras.evaluate.evaluator import evaluate_set
from fer_keras.runs import TMP_MARK, Run

ORDER = ["angry", "happy", "sad"]


@pytest.fixture(scope="module")
def model():
    return brightness_model(ORDER)


def _evaluate(model, images, run_dir: Path) -> dict:
    run_dir.mkdir(exist_ok=True)
    return evaluate_set(model, images, 32, model_classes=ORDER, pipeline="tfdata", out_dir=run_dir, tag="test")


def _results(run_dir: Path) -> dict[str, bytes]:
    run = Run(run_dir)
    files = [run.predictions_file("test"), *(Path(f"{run.confusion_stem('test')}_{k}.png")
                                              for k in ("counts", "normalized"))]
    return {f.name: f.read_bytes() for f in files}


class _FullFile:
    """A file on a disk that fills after ``room`` characters: the rest of a write is cut and ENOSPC raised."""

    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def write(self, text):
        if len(text) > self.room:
            self.fh.write(text[: self.room])
            self.fh.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(text)
        return self.fh.write(text)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def _faults(monkeypatch, run_dir: Path, fault: str, target: str) -> None:
    """Make writes of ``target`` files ("png" or "csv") under ``run_dir`` hit ``fault``: a disk that fills
    half-way through the file, or a read-only folder (root ignores file modes, so it is simulated at the
    file-opening call)."""
    code = errno.ENOSPC if fault == "full_disk" else errno.EROFS

    def ours(path) -> bool:
        return Path(path).parent == run_dir and Path(path).suffix == f".{target}"

    if target == "png":
        real_savefig = matplotlib.figure.Figure.savefig

        def savefig(self, fname, *args, **kwargs):
            if not ours(fname):
                return real_savefig(self, fname, *args, **kwargs)
            if code == errno.EROFS:
                raise OSError(code, os.strerror(code), str(fname))
            real_savefig(self, fname, *args, **kwargs)
            Path(fname).write_bytes(Path(fname).read_bytes()[:100])
            raise OSError(code, os.strerror(code), str(fname))

        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    else:
        real_open = Path.open

        def open_(self, mode="r", *args, **kwargs):
            if not ours(self) or "w" not in mode:
                return real_open(self, mode, *args, **kwargs)
            if code == errno.EROFS:
                raise OSError(code, os.strerror(code), str(self))
            return _FullFile(real_open(self, mode, *args, **kwargs), room=200)

        monkeypatch.setattr(Path, "open", open_)


@pytest.fixture(scope="module")
def evaluated(model, tmp_path_factory) -> tuple[Path, object]:
    """A run folder holding one evaluation's results, and another image set (other results, other bytes)."""
    root = tmp_path_factory.mktemp("evaluated")
    _evaluate(model, read_class_folders(write_set(root / "first", 4, seed=1)), root / "run")
    return root / "run", read_class_folders(write_set(root / "second", 6, seed=2))


@pytest.mark.parametrize("target", ["png", "csv"])
@pytest.mark.parametrize("fault", ["full_disk", "read_only"])
def test_a_failed_result_write_keeps_the_previous_file_and_leaves_no_temporary(
        model, evaluated, tmp_path, monkeypatch, fault, target):
    run_dir = shutil.copytree(evaluated[0], tmp_path / "run")
    before = _results(run_dir)
    _faults(monkeypatch, run_dir, fault, target)
    with pytest.raises(OSError) as err:
        _evaluate(model, evaluated[1], run_dir)
    assert err.value.errno == (errno.ENOSPC if fault == "full_disk" else errno.EROFS)
    failed = Path(err.value.filename)  # the file, not its temporary name
    assert failed.parent == run_dir and TMP_MARK not in failed.name and failed.suffix == f".{target}"
    after = _results(run_dir)
    # Nothing half-written under a name that is read back: the failed kind of file keeps its previous
    # version; a figure written before the failure is the new one, whole.
    assert {n: d for n, d in after.items() if n.endswith(target)} == {
        n: d for n, d in before.items() if n.endswith(target)}
    for name in after:
        if name.endswith(".png"):
            with Image.open(run_dir / name) as img:
                img.load()
    assert not [p.name for p in run_dir.iterdir() if TMP_MARK in p.name]
