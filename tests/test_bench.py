"""The benchmark harness in a tiny configuration: well-formed results, never timing assertions."""

import json
import textwrap

import keras

from fer_keras.bench import crop
from fer_keras.bench.__main__ import main
from fer_keras.bench.flops import count_flops


def test_tiny_benchmark_writes_json_and_markdown(demo_root, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["--models", "sequential_simple", "--res", "32", "--repeats", "2", "--steps", "1",
                 "--latency-repeats", "3", "--data", str(demo_root / "demo" / "train"), "--max-images", "48",
                 "--pipeline-res", "32", "--pipeline-epochs", "2", "--matmul-size", "128", "--batch", "16",
                 "--skip", "crop", "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert {"machine", "settings", "matmul_peak", "pipeline", "training", "input_bound", "inference",
            "seconds"} <= set(results)
    m = results["machine"]
    assert m["cores"] >= 1 and m["tensorflow"] and m["cpu_model"] and m["date_utc"].endswith("Z")
    assert results["matmul_peak"]["peak_flops"] > 0
    p = results["pipeline"]
    assert p["images"] == 48 and p["tfdata"]["images_per_epoch"] == p["legacy"]["images_per_epoch"] == 48
    assert p["ratio_tfdata_over_legacy"] > 0
    # sequential_simple from the model list, resnet18 added for the input-bound question at the pipeline res
    assert [(r["model"], r["res"]) for r in results["training"]] == [("sequential_simple", 32), ("resnet18", 32)]
    row = results["training"][0]
    assert row["train_flops_per_image"] == 3 * row["forward_flops_per_image"] > 0
    assert 0 < row["fraction_of_matmul_peak"] and row["images_per_s"] > 0
    assert {r["model"] for r in results["input_bound"]} == {"sequential_simple", "resnet18"}
    formats = [r["format"] for r in results["inference"]]
    assert formats == ["keras_float32", "tflite_float32", "tflite_float16", "tflite_int8",
                       "tflite_int8_float_softmax"]
    for r in results["inference"]:
        assert r["single_image"]["n"] == 3 and r["single_image"]["p95_ms"] >= r["single_image"]["median_ms"] > 0
    md = (out / "results.md").read_text()
    assert "| model | res | batch | ms/step | images/s |" in md and "| sequential_simple | 32 | 16 |" in md
    assert "tf.data / legacy" in md and "| tflite_int8 |" in md
    table_rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert all(ln.endswith("|") for ln in table_rows)
    assert "wrote" in capsys.readouterr().out


def test_flops_are_counted_from_layer_shapes():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10)(x)
    flops = count_flops(keras.Model(inp, out))
    conv, depthwise, dense = 8 * 8 * 4 * 3 * 3 * 3, 8 * 8 * 4 * 3 * 3, 8 * 8 * 4 * 10
    assert flops["forward_flops"] == 2 * (conv + depthwise + dense)
    assert flops["uncounted_layers"] == []  # batch norm is known to be negligible


def test_crop_benchmark_runs_the_crop_command_line(tmp_path, monkeypatch, demo_root):
    # A stand-in with data_prep.crop's command line (--src/--dst/--workers) that copies files.
    pkg = tmp_path / "mods" / "fake_prep"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "crop.py").write_text(textwrap.dedent("""
        import argparse, shutil
        from pathlib import Path
        p = argparse.ArgumentParser()
        p.add_argument("--src", type=Path, required=True)
        p.add_argument("--dst", type=Path, required=True)
        p.add_argument("--workers", type=int)
        a = p.parse_args()
        shutil.copytree(a.src, a.dst)
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    result = crop.crop_throughput(demo_root / "demo" / "train", n_images=4, workers=(1, 2), module="fake_prep.crop")
    assert [r["workers"] for r in result["rows"]] == [1, 2]
    assert all(r["images"] == 4 and r["images_per_s_end_to_end"] > 0 for r in result["rows"])
