"""The run folder's one owner: file names and readers, without TensorFlow."""

import subprocess
import sys

import pytest

from fer_keras.config import make_config, save_config
from fer_keras.runs import Run, find_runs, score_file, write_json


def test_readers_validate_and_tolerate_what_they_should(tmp_path):
    run = Run(tmp_path / "r")
    run.dir.mkdir()
    assert run.status() == {} and run.config_values() == {} and not run.is_finished()
    save_config(make_config({"model": "lenet5", "data_root": "data"}), run.config_file)
    assert run.config(data_root=tmp_path / "moved").data_root == tmp_path / "moved"
    run.status_file.write_text("{half")  # killed mid-write by an older version: unreadable, not fatal
    assert run.status() == {}
    with pytest.raises(ValueError, match="order of the model's outputs is unknown"):
        run.classes()
    write_json(run.classes_file, ["a", "b"])
    write_json(run.metrics_file, {"val": {}})
    run.model_file.write_bytes(b"")
    assert run.classes() == ["a", "b"] and run.is_finished() and find_runs(tmp_path) == [run.dir]
    assert run.best_score_file == score_file(run.model_file) == run.dir / "best.json"
    write_json(run.crossdomain_file("wild"), {})
    assert list(run.crossdomain_files()) == ["wild"]


def test_reading_a_run_never_imports_tensorflow(tmp_path):
    code = ("import sys\nfrom fer_keras.runs import Run\n"
            f"r = Run({str(tmp_path)!r}); r.status(); r.config_values(); r.crossdomain_files()\n"
            "assert not {'tensorflow', 'keras'} & set(sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_float32_copy_of_a_mixed_precision_model_keeps_graph_and_weights(tmp_path):
    """Export and the built-in model need float32: the copy is rebuilt from the saved graph itself,
    so whatever the run built (options, pre-training layout, input) survives, with the same weights."""
    import numpy as np

    from fer_keras.registry import build_model
    from fer_keras.runs import Run
    from fer_keras.train.recipe import dtype_policy

    with dtype_policy("mixed_bfloat16"):
        mixed = build_model("vgg_lite", 48, 7, width=16)
    copy = Run(tmp_path).float32_model(mixed)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert [layer.name for layer in copy.layers] == [layer.name for layer in mixed.layers]
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    ours, theirs = np.asarray(copy(x)), np.asarray(mixed(x), dtype="float32")
    assert np.abs(ours - theirs).max() < 0.05  # bfloat16 keeps 8 bits of mantissa
