"""The real-data check's verdict and its command, on generated data (the real run is a developer's job)."""

from __future__ import annotations

from conftest import make_folder_dataset

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


def test_command_prints_every_epoch_and_exits_with_its_verdict(tmp_path, capsys):
    data = tmp_path / "faces"
    for split in ("train", "test"):
        make_folder_dataset(data / split, dict.fromkeys(CLASSES, 10 if split == "train" else 2), size=16)
    rc = realcheck.main(["--data", str(data), "--epochs", "1", "--out", str(tmp_path / "runs")])
    out = capsys.readouterr()
    assert "realcheck epoch  1" in out.out and "predicted shares: ang" in out.out
    assert rc == (1 if "REALCHECK FAILED" in out.err else 0)
    assert (tmp_path / "runs" / "realcheck_sequential_simple_faces_s42" / "metrics.json").is_file()


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert realcheck.main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "needs train/ and test/" in capsys.readouterr().err
