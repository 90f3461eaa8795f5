"""One benchmark run: every section measured in one process, back to back, then written out.

Ratios (tf.data over legacy, TFLite over Keras, model FLOP/s over matmul peak) are only
quoted between numbers taken in the same run, because the machine may be shared and its
speed drift between runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from fer_keras.bench.crop import crop_throughput
from fer_keras.bench.inference import inference_benchmark
from fer_keras.bench.learning_curve import learning_curve_section
from fer_keras.bench.train_speed import add_ratios, train_speed
from fer_keras.data.demo import ensure_demo
from fer_keras.export.tflite import QUANTS
from fer_keras.machine import machine_info, matmul_peak
from fer_keras.registry import get_spec, list_models
from fer_keras.train.precision import precision_record, resolve_precision

SECTIONS = ("pipeline", "training", "inference", "crop", "train-speed", "learning-curve")
#: What runs without --only: train-speed (fit per speed option, minutes per model) and learning-curve
#: (run folders to read) are asked for by name.
DEFAULT_SECTIONS = SECTIONS[:4]
#: Sections that only read result files: alone, they import no TensorFlow and measure nothing.
FILE_SECTIONS = ("learning-curve",)
DEFAULT_MODELS = ("sequential_simple", "resnet18", "mobilenet_v2")
SPEED_MODELS = ("sequential_simple", "resnet18", "vgg_lite")
INPUT_BOUND_MODELS = ("sequential_simple", "resnet18")


@dataclass
class BenchOptions:
    models: list[str] | None = None
    res: list[int] = field(default_factory=lambda: [48])
    batch: int = 32
    repeats: int = 5
    steps: int = 5
    latency_repeats: int = 50
    data: Path | None = None
    max_images: int | None = 2000
    pipeline_res: int = 48
    pipeline_epochs: int = 6
    matmul_size: int = 2048
    threads: int | None = None
    crop_images: int = 160
    #: TFLite formats timed against Keras in the inference section; () times Keras alone.
    quants: tuple[str, ...] = QUANTS
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    out: Path = Path("bench")
    #: train-speed: variants (train_speed.VARIANTS), batch sizes and steps_per_execution values to time.
    speed_variants: tuple[str, ...] = ("fp32", "bf16", "fp32+xla")
    speed_batches: tuple[int, ...] = (64, 128)
    steps_per_execution: tuple[int, ...] = (1,)
    #: learning-curve: finished (or running) run folders whose learning_curve.csv to show.
    learning_curves: tuple[Path, ...] = ()


def resolve_models(names: list[str] | None) -> list[str]:
    """The models to measure: ``names``, every registered model for ``["all"]``, else the defaults."""
    if names == ["all"]:
        return list_models()
    for name in names or ():
        get_spec(name)  # an unknown name fails now, with the closest one, not after minutes of timing
    return list(names or DEFAULT_MODELS)


def data_folder(data: Path | None) -> Path:
    """The folder to benchmark on: ``data``, or the built-in demo training images."""
    if data is not None:
        return Path(data)
    demo, _ = ensure_demo(Path("data"))
    return demo / "train"


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def measures(sections: tuple[str, ...] | list[str]) -> bool:
    """Whether any of ``sections`` times something (and so needs TensorFlow and the matmul peak)."""
    return any(s not in FILE_SECTIONS for s in sections)


def run_benchmark(opts: BenchOptions) -> dict:
    models = resolve_models(opts.models)
    timed = measures(opts.sections)
    needs_images = {"pipeline", "crop"} & set(opts.sections)  # train-speed makes its own
    folder = data_folder(opts.data) if needs_images else opts.data
    results: dict = {"machine": machine_info(devices=timed), "notes": [], "settings": {
        "models": models, "res": opts.res, "batch": opts.batch, "repeats": opts.repeats, "steps": opts.steps,
        "latency_repeats": opts.latency_repeats, "data": str(folder) if folder else None, "max_images": opts.max_images,
        "sections": list(opts.sections), "speed_variants": list(opts.speed_variants),
        "speed_batches": list(opts.speed_batches), "steps_per_execution": list(opts.steps_per_execution),
        "learning_curves": [str(d) for d in opts.learning_curves]}}
    if "learning-curve" in opts.sections:  # files only: a missing curve fails now, not after minutes of timing
        _log(f"learning curves of {len(opts.learning_curves)} run(s)")
        results["learning_curve"] = learning_curve_section(list(opts.learning_curves))
    if not timed:
        return results
    # Both import TensorFlow at module level; the CLI parses its arguments (and quiets TF) first.
    from fer_keras.bench.pipeline import input_bound, load_images, pipeline_throughput
    from fer_keras.bench.training import training_throughput

    if results["machine"]["cores"] and results["machine"]["cores"] <= 4:
        results["notes"].append("few cores: other processes on this machine may have shared them; "
                                "compare ratios within this run, not absolute numbers across runs")
    _log(f"matmul peak ({opts.matmul_size}^2 float32)")
    results["matmul_peak"] = peak = matmul_peak(opts.matmul_size, opts.repeats)
    if "pipeline" in opts.sections:
        _log(f"input pipelines on {folder}")
        images = load_images(folder, opts.max_images)
        results["pipeline"] = pipeline_throughput(images, opts.pipeline_res, opts.batch, opts.pipeline_epochs)
    if "training" in opts.sections or "pipeline" in opts.sections:
        results["training"] = []
        todo = [(m, r) for r in opts.res for m in models] if "training" in opts.sections else []
        if "pipeline" in opts.sections:  # the models whose training rate decides "input-bound"
            todo += [(m, opts.pipeline_res) for m in INPUT_BOUND_MODELS if (m, opts.pipeline_res) not in todo]
        for model, res in todo:
            _log(f"training {model} at {res}")
            try:
                results["training"].append(training_throughput(model, res, opts.batch, steps=opts.steps,
                                                               repeats=opts.repeats, peak_flops=peak["peak_flops"]))
            except Exception as err:  # noqa: BLE001 - one failing model must not lose the others' numbers
                results["training"].append({"model": model, "res": res, "error": f"{type(err).__name__}: {err}"})
        if "pipeline" in opts.sections:
            results["input_bound"] = input_bound(results["pipeline"], results["training"])
    if "inference" in opts.sections:
        results["inference"] = []
        for res in opts.res:
            for model in models:
                spec = get_spec(model)
                if not spec.supports(res):
                    results["notes"].append(f"{model} cannot take {res} px; it takes {spec.resolution_text()}")
                    continue
                _log(f"inference {model} at {res}")
                try:
                    results["inference"] += inference_benchmark(
                        model, res, batch=opts.batch, repeats=opts.repeats,
                        latency_repeats=opts.latency_repeats, threads=opts.threads,
                        quants=opts.quants)
                except Exception as err:  # noqa: BLE001
                    results["inference"].append({"model": model, "res": res, "format": "keras_float32",
                                                 "error": f"{type(err).__name__}: {err}"})
    if "train-speed" in opts.sections:
        _log("what mixed_precision: auto picks here")
        choice, facts = resolve_precision("auto")
        results["precision_auto"] = precision_record(choice, "auto", facts)
        results["train_speed"] = train_speed_section(opts)
    if "crop" in opts.sections:
        _log("face crop")
        results["crop"] = crop_throughput(folder, opts.crop_images)
    return results


def train_speed_section(opts: BenchOptions) -> list[dict]:
    """fit() images/s for every (model, res, batch, variant, steps_per_execution), one after another in
    this process, with each row's ratio to fp32 taken within this run."""
    rows = []
    for model in resolve_models(opts.models) if opts.models else SPEED_MODELS:
        for res in opts.res:
            for batch in opts.speed_batches:
                for spe in opts.steps_per_execution:
                    for variant in opts.speed_variants:
                        _log(f"train-speed {model} {res} px batch {batch} {variant} steps/exec {spe}")
                        try:
                            rows.append(train_speed(model, res, batch, variant, steps=max(opts.steps, spe),
                                                    repeats=opts.repeats, steps_per_execution=spe))
                            _log(f"  {rows[-1]['images_per_s']:.1f} images/s")
                        except Exception as err:  # noqa: BLE001 - one failing variant must not lose the others
                            rows.append({"model": model, "res": res, "batch": batch, "variant": variant,
                                         "steps_per_execution": spe, "error": f"{type(err).__name__}: {err}"})
    return add_ratios(rows)
