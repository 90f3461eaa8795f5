"""Export a trained run to TFLite and measure what the conversion cost and bought.

The run's own config.yaml says which dataset, resolution and cross-validation fold it
was trained on, and ``splits_for`` rebuilds exactly its splits: the int8 calibration
sample comes from its training split, the check from its test split (every image once,
in order), scored in the class order classes.json gives the model's outputs. The result
goes into the run folder beside the model:
``model_<tag>.tflite`` and ``export_<tag>.json`` (tag: float32, float16 or int8).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fer_keras.config import DEFAULT_RUNS
from fer_keras.data.pipeline import eval_dataset
from fer_keras.data.readers import ImageSet
from fer_keras.data.splits import splits_for
from fer_keras.export.tflite import TAGS, TFLiteModel, convert, float_ops, interpreter_name, serving_function
from fer_keras.labels import output_columns
from fer_keras.machine import machine_info
from fer_keras.runs import MODEL_FILE, Run, find_runs, write_json
from fer_keras.timing import summarise, time_calls


def resolve_run(run: str | Path, runs_root: str | Path = DEFAULT_RUNS) -> Path:
    """A run folder from a path or a run id (searched under ``runs_root``)."""
    path = Path(run)
    if Run(path).model_file.is_file():
        return path
    direct = Path(runs_root) / str(run)
    if Run(direct).model_file.is_file():
        return direct
    matches = [p for p in find_runs(Path(runs_root)) if p.name == str(run)]
    if len(matches) == 1:
        return matches[0]
    where = f"{path} and {direct}" + (f" (and {len(matches)} runs named so under {runs_root})" if matches else "")
    raise FileNotFoundError(f"no trained run {run!r}: looked for {MODEL_FILE} in {where}")


def representative_sample(images: ImageSet, res: int, n: int, seed: int = 0, *, pipeline: str) -> np.ndarray:
    """``n`` seeded random training images, decoded like evaluation images (no augmentation)."""
    idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    sample = images.subset(idx, f"{images.name}[representative]")
    return np.concatenate([x.numpy() for x, _ in eval_dataset(sample, res, 64, pipeline=pipeline)])


def _latencies(fns: dict, images: np.ndarray, repeats: int, rounds: int = 3) -> dict[str, dict]:
    """Single-image latency of each function over the first test images, cycled; the
    functions take turns over ``rounds`` rounds so a load spike does not hit one only."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            index = itertools.count()
            times[key] += time_calls(lambda fn=fn, index=index: fn(images[next(index) % len(images)][None]),
                                     repeats=max(1, repeats // rounds), warmup=3)
    return {k: summarise(v) for k, v in times.items()}


def export_run(run_dir: Path, quant: str, *, data_root: Path | None = None, representative: int = 200,
               threads: int | None = None, latency_repeats: int = 100, batch: int = 64) -> dict:
    """Convert ``run_dir``'s best.keras, compare with Keras on the test split, write the results."""
    run = Run(run_dir)
    cfg = run.config(data_root=data_root)
    if not cfg.dataset_dir().exists():
        raise FileNotFoundError(f"the run's dataset {cfg.dataset_dir()} does not exist here; pass --data-root")
    splits = splits_for(cfg)
    test, test_name = (splits.test, "test") if splits.test is not None else (splits.val, "val (no test split)")
    if cfg.folds is not None:
        test_name += f" (fold {cfg.fold} of {cfg.folds})"
    columns = output_columns(run.classes(), test.class_names, test_name=test.name)
    model = run.float32_model()
    calibrate = quant.startswith("int8")
    rep = (representative_sample(splits.train, cfg.res, representative, seed=cfg.seed, pipeline=cfg.pipeline)
           if calibrate else None)
    content = convert(model, cfg.res, quant, (lambda: iter(rep)) if rep is not None else None)
    floats = float_ops(content) if calibrate else []
    tag = TAGS[quant]
    out_file = run.tflite_file(tag)
    out_file.write_bytes(content)
    lite = TFLiteModel(content, threads)
    keras_fn = serving_function(model, cfg.res)

    keras_probs, lite_probs, first = [], [], []
    for x, _ in eval_dataset(test, cfg.res, batch, pipeline=cfg.pipeline):
        keras_probs.append(keras_fn(x).numpy())
        lite_probs.append(lite(x.numpy()))
        if sum(len(f) for f in first) < 64:
            first.append(x.numpy())
    kp, lp = np.concatenate(keras_probs)[:, columns], np.concatenate(lite_probs)[:, columns]
    labels = test.labels
    if len(kp) != len(labels):
        raise RuntimeError(f"predicted {len(kp)} of {len(labels)} test images")
    k_acc, l_acc = float(np.mean(kp.argmax(1) == labels)), float(np.mean(lp.argmax(1) == labels))
    sample = np.concatenate(first)[:64]
    lat = _latencies({"keras": lambda x: keras_fn(x).numpy(), "tflite": lite}, sample, latency_repeats)
    k_lat, l_lat = lat["keras"], lat["tflite"]
    result = {
        "run": run.name, "model": cfg.model, "res": cfg.res, "dataset": str(cfg.dataset_dir()),
        "format": "tflite", "quant": quant, "file": out_file.name,
        "conversion": _conversion_note(quant, 0 if rep is None else len(rep), floats),
        # int8 files: the ops that still compute in float32 (none in a full-integer file)
        **({"float_ops": floats} if calibrate else {}),
        "input_output_types": list(lite.input_output_types()),
        "interpreter": interpreter_name(), "threads": lite.threads,
        "size_bytes": out_file.stat().st_size, "keras_size_bytes": run.model_file.stat().st_size,
        "test_split": test_name, "n_test": int(len(labels)),
        "keras_accuracy": k_acc, "tflite_accuracy": l_acc, "accuracy_change": l_acc - k_acc,
        "argmax_agreement": float(np.mean(kp.argmax(1) == lp.argmax(1))),
        "keras_predicted_classes": int(len(np.unique(kp.argmax(1)))),
        "mean_abs_prob_diff": float(np.abs(kp - lp).mean()),
        # int8 probabilities come in steps of 1/256: a model less sure than that produces ties,
        # and argmax then picks the first tied class, whatever Keras said.
        "keras_top1_margin_median": float(np.median(np.diff(np.sort(kp, 1)[:, -2:], axis=1))),
        "tflite_tied_top1": float(np.mean((lp == lp.max(1, keepdims=True)).sum(1) > 1)),
        "max_abs_prob_diff": float(np.abs(kp - lp).max()),
        "latency_single_image": {"keras_float32": k_lat, "tflite": l_lat,
                                 "speedup_median": k_lat["median_ms"] / l_lat["median_ms"]},
        "machine": machine_info(),
    }
    write_json(run.export_file(tag), result)
    return result


def _conversion_note(quant: str, representative: int, floats: Sequence[str] = ()) -> str:
    """What the file is, from what it computes in float (``floats``: :func:`float_ops` of the file; ONE_HOT
    among them: the input's equalisation, which only the converter's float island leaves there)."""
    calibrated = f"calibrated on {representative} seeded random training images"
    softmax = quant == "int8_float_softmax"
    others = [op for op in floats if not (softmax and op == "SOFTMAX")]
    if quant == "int8" and not others:
        return f"full-integer int8 (TFLITE_BUILTINS_INT8), float32 input/output, {calibrated}"
    if quant.startswith("int8"):
        parts = []
        if others:
            parts.append(f"the input's histogram equalisation ({len(others)} ops in float32, exact; the equalised "
                         "image is quantized once)" if "ONE_HOT" in others else
                         f"{len(others)} ops in float32 ({', '.join(dict.fromkeys(others))})")
        if softmax:
            parts.append("a float softmax on dequantized logits")
        return (f"int8 except {' and '.join(parts)}" + (", not full-integer" if others else "")
                + f", float32 input/output, {calibrated}")
    if quant == "float16":
        return "float16 weights, float32 input/output"
    return "float32, no quantization"
