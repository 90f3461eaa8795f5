"""The real-data check's verdict and its command, on generated data (the real run is a developer's job)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import make_folder_dataset, stable_seed
from PIL import Image

from fer_keras import realcheck

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def row(shares: dict[str, float], test_acc: float, collapsed: bool = False) -> dict:
    return {"shares": shares, "test_acc": test_acc, "collapsed": collapsed}


def test_verdict_passes_a_learning_run():
    shares = dict.fromkeys(CLASSES, 1 / 7)
    assert realcheck.verdict([row(shares, 0.40)], 7) == []


def test_verdict_names_collapse_missing_classes_and_chance():
    shares = {c: 0.0 for c in CLASSES} | {"sad": 0.2, "surprise": 0.8}
    problems = realcheck.verdict([row(dict.fromkeys(CLASSES, 1 / 7), 0.5), row(shares, 0.15, collapsed=True)], 7)
    assert any("collapsed: 80% of test predictions are 'surprise'" in p for p in problems)
    assert any("never predicted" in p and "angry" in p for p in problems)
    assert any("not above chance" in p for p in problems)
    assert realcheck.verdict([], 7) == ["no epoch finished"]


def _grey_faces(root: Path, counts: dict[str, int], level=lambda cls: 128) -> Path:
    """``root/<class>/<i>.png``: 16 px grey images at ``level(class)`` plus a little noise."""
    rng = np.random.default_rng(stable_seed(str(root.name)))
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = np.clip(rng.normal(level(cls), 8, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / cls / f"{i}.png")
    return root


def test_the_command_fails_a_collapsed_run(tmp_path, capsys):
    """Every image the same grey, whatever its class: the model cannot tell them apart and gives every test
    image the same answer, which the check must call a collapse (and not above chance)."""
    data = tmp_path / "faces"
    for split, n in (("train", 10), ("test", 2)):
        make_folder_dataset(data / split, dict.fromkeys(CLASSES, 0))
        _grey_faces(data / split, dict.fromkeys(CLASSES, n))
    rc = realcheck.main(["--data", str(data), "--epochs", "1", "--out", str(tmp_path / "runs")])
    out = capsys.readouterr()
    assert "realcheck epoch  1" in out.out and "predicted shares: ang" in out.out
    assert rc == 1 and "REALCHECK FAILED: collapsed: 100% of test predictions are " in out.err
    assert "classes never predicted on test" in out.err and "is not above chance" in out.err
    assert (tmp_path / "runs" / "realcheck_sequential_simple_faces_s42" / "metrics.json").is_file()


def test_the_command_passes_a_learning_run(tmp_path, capsys, monkeypatch):
    """Three classes told apart by brightness: the protocol's run learns them (in batches of 8 at 1e-3 rather
    than 32 at 1e-4, so three epochs suffice) and the check passes it."""
    levels = {"angry": 40, "happy": 215, "sad": 128}
    data = tmp_path / "faces"
    _grey_faces(data / "train", dict.fromkeys(levels, 80), level=levels.get)
    _grey_faces(data / "test", dict.fromkeys(levels, 10), level=levels.get)
    config = realcheck.realcheck_config
    monkeypatch.setattr(realcheck, "realcheck_config",
                        lambda *a, **k: config(*a, **k).model_copy(update={"lr": 1e-3, "batch": 8}))
    rc = realcheck.main(["--data", str(data), "--epochs", "3", "--out", str(tmp_path / "runs")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "REALCHECK FAILED" not in out.err and "realcheck passed: final test accuracy" in out.out
    assert float(out.out.split("realcheck passed: final test accuracy")[1].split()[0]) >= 1 / 3 + 0.05


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert realcheck.main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "needs train/ and test/" in capsys.readouterr().err
