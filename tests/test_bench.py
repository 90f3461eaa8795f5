"""The benchmark harness in a tiny configuration: well-formed results, never timing assertions."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pandas as pd
import pytest
import yaml
from grid_fakes import write_run

from fer_keras.bench import crop
from fer_keras.bench.__main__ import main
from fer_keras.bench.flops import count_flops
from fer_keras.report.collect import RunRecord, learning_curves, run_curve


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
    assert md.count("CPU flags: ") == 4 and "cpu_flags" in m and "onednn" in m  # pipeline, bound, training, inference
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


# --- learning-curve: result files only, no TensorFlow ---

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def _curve(phases: dict[str, int], seconds_per_epoch: float, replayed: int | None = None) -> pd.DataFrame:
    """learning_curve.csv rows as WallClock writes them; ``replayed``: that main epoch's row appears twice,
    the first copy (before a kill) with a worse accuracy, as after a restart."""
    rows, elapsed = [], 0.0
    for phase, epochs in phases.items():
        for epoch in range(1, epochs + 1):
            elapsed += seconds_per_epoch + epoch % 3  # uneven epochs
            val = 0.2 + 0.5 * (1 - 0.9 ** len(rows)) - (0.05 if len(rows) == 20 else 0.0)
            row = {"phase": phase, "epoch": epoch, "elapsed_s": round(elapsed, 1), "accuracy": val + 0.05,
                   "val_accuracy": val, "val_loss": 2 - val, "learning_rate": 1e-3 / (1 + len(rows))}
            if phase == "main" and epoch == replayed:
                rows.append({**row, "val_accuracy": 0.01})
            rows.append(row)
    return pd.DataFrame(rows, columns=["phase", "epoch", "elapsed_s", "accuracy", "val_accuracy", "val_loss",
                                       "learning_rate"])


@pytest.fixture(scope="module")
def curve_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    fast = write_run(runs / "fast16" / "vgg_lite_48_fer2013_none_scratch_s42_fast",
                     {"model": "vgg_lite", "recipe": "fast", "epochs": 30, "model_options": {"width": 64}},
                     val=0.55, test=0.6)
    _curve({"frozen": 5, "main": 25}, 40.0, replayed=7).to_csv(fast / "learning_curve.csv", index=False)
    slow = runs / "paper" / "lenet5_48_fer2013_conservative_scratch_s42"  # still training: no metrics.json
    slow.mkdir(parents=True)
    (slow / "config.yaml").write_text(yaml.safe_dump({"model": "lenet5", "epochs": 200}))
    _curve({"main": 8}, 12.0).to_csv(slow / "learning_curve.csv", index=False)
    old = runs / "old" / "resnet18_48_fer2013_conservative_scratch_s42"  # from before learning curves
    write_run(old, {"model": "resnet18", "epochs": 50}, val=0.5, test=0.5)
    return fast, slow, old


@pytest.fixture(scope="module")
def curve_bench(curve_runs, tmp_path_factory):
    """The section through the command line in a fresh process, which must not import TensorFlow."""
    fast, slow, _ = curve_runs
    out = tmp_path_factory.mktemp("bench")
    code = textwrap.dedent(f"""
        import sys
        from fer_keras.bench.__main__ import main
        assert main(["--only", "learning-curve", "--learning-curves", {str(fast)!r}, {str(slow)!r},
                     "--out", {str(out)!r}]) == 0
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not heavy, heavy
    """)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_learning_curve_section_holds_the_csv_numbers(curve_runs, curve_bench):
    fast, slow, _ = curve_runs
    out, _ = curve_bench
    results = json.loads((out / "results.json").read_text())
    assert "matmul_peak" not in results and results["machine"]["gpus"] is None  # nothing timed, no TensorFlow
    assert results["machine"]["tensorflow"]  # the installed version, read without importing it
    assert results["settings"]["sections"] == ["learning-curve"]
    a, b = results["learning_curve"]
    csv = pd.read_csv(fast / "learning_curve.csv").drop_duplicates(["phase", "epoch"], keep="last")
    assert a["run"] == fast.name and a["run_dir"] == str(fast)
    assert (a["model"], a["recipe"], a["epochs"], a["model_options"]) == ("vgg_lite", "fast", 30, {"width": 64})
    assert a["epochs_trained"] == 25 and len(a["points"]) == 30 == len(csv)  # the replayed epoch counted once
    assert [(p["phase"], p["epoch"]) for p in a["points"]] == list(zip(csv["phase"], csv["epoch"], strict=True))
    assert [p["minutes"] for p in a["points"]] == pytest.approx(list(csv["elapsed_s"] / 60))
    assert [p["val_accuracy"] for p in a["points"]] == pytest.approx(list(csv["val_accuracy"]))
    assert [p["learning_rate"] for p in a["points"]] == pytest.approx(list(csv["learning_rate"]))
    best = csv.loc[csv["val_accuracy"].idxmax()]
    assert a["best_val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert (a["best_phase"], a["best_epoch"]) == (best["phase"], best["epoch"])
    assert a["minutes_to_best"] == pytest.approx(best["elapsed_s"] / 60)
    assert a["total_minutes"] == pytest.approx(csv["elapsed_s"].max() / 60)
    test = json.loads((fast / "metrics.json").read_text())["test"]
    assert a["test_accuracy"] == pytest.approx(0.6) == pytest.approx(test["accuracy"])
    assert a["test_balanced_accuracy"] == pytest.approx(test["balanced_accuracy"])
    assert a["test_f1_macro"] == pytest.approx(test["f1_macro"])
    # a run still training: its curve so far, the protocol recipe, no test results yet
    assert (b["model"], b["recipe"], b["epochs"], b["epochs_trained"]) == ("lenet5", "protocol", 200, 8)
    assert b["test_accuracy"] is b["test_balanced_accuracy"] is b["test_f1_macro"] is None
    assert b["total_minutes"] == pytest.approx(pd.read_csv(slow / "learning_curve.csv")["elapsed_s"].max() / 60)


def test_learning_curve_section_writes_tables_and_figure(curve_runs, curve_bench):
    fast, slow, _ = curve_runs
    out, stdout = curve_bench
    a, b = json.loads((out / "results.json").read_text())["learning_curve"]
    md = (out / "results.md").read_text()
    assert "| run | model | recipe | epochs | minutes | best val acc (at min) | test acc |" in md
    assert (f"| {fast.name} | vgg_lite (width=64) | fast | 25 of 30 | {a['total_minutes']:.1f} | "
            f"{a['best_val_accuracy']:.3f} (min {a['minutes_to_best']:.1f}) | 0.600 |") in md
    assert f"| {slow.name} | lenet5 | protocol | 8 of 200 | {b['total_minutes']:.1f} |" in md
    assert md.rstrip().endswith("|") and "results.md" in stdout
    fast_table = md.split(f"#### {fast.name}")[1].split("####")[0]
    rows = [ln for ln in fast_table.splitlines() if ln.startswith("| ") and "%" in ln]
    assert len(rows) == 10 and rows[-1].startswith("| 100 % |") and "| main 25 |" in rows[-1]
    slow_table = md.split(f"#### {slow.name}")[1]
    assert 1 < len([ln for ln in slow_table.splitlines() if "%" in ln]) <= 8  # one row per epoch at most
    png = out / "learning_curves.png"
    assert png.is_file() and png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_learning_curve_command_line_errors(curve_runs, tmp_path, capsys):
    fast, _, old = curve_runs
    out = ["--out", str(tmp_path / "bench")]

    def error(*argv: str) -> str:
        with pytest.raises(SystemExit) as stop:
            main([*argv, *out])
        assert stop.value.code == 2
        return capsys.readouterr().err

    err = error("--only", "learning-curve", "--learning-curves", str(fast), str(old))
    assert str(old) in err and "learning_curve.csv" in err and "predates learning curves" in err
    assert "never trained an epoch" in err and str(fast) not in err.replace(str(old), "")
    assert "not a folder" in error("--only", "learning-curve", "--learning-curves", str(tmp_path / "nope"))
    assert "add --only learning-curve" in error("--learning-curves", str(fast))
    assert "add --only learning-curve" in error("--only", "crop", "--learning-curves", str(fast))
    assert "add --learning-curves RUN_DIR" in error("--only", "learning-curve")
    assert not (tmp_path / "bench").exists()  # refused before anything ran


def test_learning_curve_reader_is_shared_with_the_report(curve_runs):
    fast, _, old = curve_runs
    records = {"fast": RunRecord("fast", fast, []), "old": RunRecord("old", old, [])}
    stacked = learning_curves(records)
    assert set(stacked["run_id"]) == {"fast"}
    pd.testing.assert_frame_equal(stacked, run_curve(fast, "fast"))
    assert run_curve(old) is None


def test_every_speed_table_carries_the_cpu_flags_and_train_speed_says_what_auto_picks():
    """Issue 26: a speed number means little without the CPU's bfloat16/AVX-512 flags beside it."""
    from fer_keras.bench.report import markdown

    machine = {"date_utc": "x", "host": "h", "cpu_model": "AMD EPYC", "cores": 2, "load_average_1m": 0,
               "tensorflow": "t", "keras": "k", "gpus": [], "cpu_flags": ["avx2", "fma"], "onednn": False}
    speed = {"model": "vgg_lite", "res": 48, "batch": 128, "variant": "fp32", "steps_per_execution": 1,
             "images_per_s": 50.0, "ratio_to_fp32": 1.0, "first_epoch_s": 3.0}
    training = {"model": "vgg_lite", "res": 48, "error": "x"}
    auto = {"setting": "auto", "mixed_precision": "none", "reason": "oneDNN is off"}
    md = markdown({"machine": machine, "training": [training], "train_speed": [speed], "precision_auto": auto})
    flags = "CPU flags: avx2 fma; oneDNN off.\n"
    assert md.count(flags) == 2
    assert md.index("### Training throughput") < md.index(flags) < md.index("### Training speed per option")
    assert md.endswith(flags + "\n`mixed_precision: auto` picks **float32** on this machine: oneDNN is off.\n")
    # results written before the flags were recorded say so, rather than printing nothing
    old = {k: v for k, v in machine.items() if k not in ("cpu_flags", "onednn")}
    assert "CPU flags: not recorded." in markdown({"machine": old, "train_speed": [speed]})
