"""results.json (everything measured) and results.md (the tables a reader wants)."""

from __future__ import annotations

from pathlib import Path

from fer_keras.bench.learning_curve import at_fractions, curves_frame
from fer_keras.runs import write_json


def _g(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _machine(r: dict) -> str:
    m = r["machine"]
    peak = r.get("matmul_peak")
    gpus = "not checked" if m["gpus"] is None else ", ".join(m["gpus"]) or "none"
    text = (f"Measured {m['date_utc']} on {m['host']}: {m['cpu_model']}, {m['cores']} cores, "
            f"load average {m['load_average_1m']} at start, TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
            f"GPUs: {gpus}.\n")
    if peak:
        text += (f"Dense float32 matmul peak ({peak['size']}x{peak['size']}, same run): "
                 f"{peak['peak_flops'] / 1e9:,.1f} GFLOP/s best, {peak['median_flops'] / 1e9:,.1f} median.\n")
    return text


def _flags(machine: dict) -> str:
    """The CPU flags that decide training speed, for the line under every speed table (old results lack them)."""
    if "cpu_flags" not in machine:
        return "CPU flags: not recorded.\n"
    flags = "unreadable" if machine["cpu_flags"] is None else " ".join(machine["cpu_flags"]) or "none of note"
    onednn = {True: "on", False: "off", None: "platform default"}[machine.get("onednn")]
    return f"CPU flags: {flags}; oneDNN {onednn}.\n"


def _auto(record: dict) -> str:
    policy = "float32" if record["mixed_precision"] == "none" else record["mixed_precision"]
    return f"`mixed_precision: auto` picks **{policy}** on this machine: {record['reason']}.\n"


def _pipeline(p: dict) -> str:
    rows = [[name, _g(p[name]["images_per_s"]), _g(p[name]["first_epoch_images_per_s"])]
            for name in ("tfdata", "legacy")]
    return (f"### Input pipeline ({p['folder']}, {p['images']} images, {p['res']} px, batch {p['batch']})\n\n"
            + _table(["pipeline", "images/s (steady)", "images/s (first epoch)"], rows)
            + f"\ntf.data / legacy: **{p['ratio_tfdata_over_legacy']:.1f}x** steady, "
              f"{p['ratio_first_epoch']:.1f}x first epoch.\n")


def _bound(rows: list[dict]) -> str:
    body = [[r["model"], str(r["res"]), _g(r["train_images_per_s"]), _g(r["tfdata_images_per_s"]),
             "yes" if r["input_bound_tfdata"] else "no", _g(r["legacy_images_per_s"]),
             "yes" if r["input_bound_legacy"] else "no"] for r in rows]
    return "### Is training input-bound?\n\n" + _table(
        ["model", "res", "train images/s", "tf.data images/s", "bound (tf.data)", "legacy images/s",
         "bound (legacy)"], body)


def _training(rows: list[dict]) -> str:
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["model"], str(r["res"]), "-", "-", "-", "-", "-", r["error"][:80]])
            continue
        frac = r["fraction_of_matmul_peak"]
        body.append([r["model"], str(r["res"]), str(r["batch"]), _g(r["ms_per_step"]), _g(r["images_per_s"]),
                     _g(r["forward_flops_per_image"] / 1e9, 3), _g(r["achieved_flops_per_s"] / 1e9),
                     "-" if frac is None else f"{100 * frac:.1f} %"])
    return ("### Training throughput (train_on_batch on a batch in memory; training FLOPs = 3 x forward)\n\n"
            + _table(["model", "res", "batch", "ms/step", "images/s", "fwd GFLOPs/image", "GFLOP/s",
                      "of matmul peak"], body))


def _train_speed(rows: list[dict]) -> str:
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["model"], str(r["res"]), str(r["batch"]), r["variant"], str(r["steps_per_execution"]),
                         "-", "-", r["error"][:80]])
            continue
        ratio = "-" if r["ratio_to_fp32"] is None else f"{r['ratio_to_fp32']:.2f}x"
        body.append([r["model"], str(r["res"]), str(r["batch"]), r["variant"], str(r["steps_per_execution"]),
                     _g(r["images_per_s"]), ratio, _g(r["first_epoch_s"])])
    return ("### Training speed per option (model.fit on the tf.data pipeline with augmentation; ratios "
            "within this run only)\n\n" + _table(["model", "res", "batch", "variant", "steps/exec", "images/s",
                                                  "vs fp32", "first epoch s (compile)"], body))


def _inference(rows: list[dict]) -> str:
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["model"], str(r["res"]), r["format"], "-", "-", "-", "-", "-", r["error"][:80]])
            continue
        size = "-" if r.get("size_bytes") is None else _g(r["size_bytes"] / 1e6, 2)
        s = r["single_image"]
        body.append([r["model"], str(r["res"]), r["format"], size, _g(s["median_ms"], 2), _g(s["p95_ms"], 2),
                     _g(r["batch_images_per_s"]), f"{r['speedup_single_vs_keras']:.2f}x",
                     f"{r['speedup_batch_vs_keras']:.2f}x"])
    return "### Inference (random weights)\n\n" + _table(
        ["model", "res", "format", "MB", "1 image median ms", "p95 ms", "batch images/s", "speed-up (1 image)",
         "speed-up (batch)"], body)


def _crop(c: dict) -> str:
    if "skipped" in c:
        return f"### Face crop (data_prep.crop)\n\nSkipped: {c['skipped']}.\n"
    body = [[str(r["workers"]), _g(r.get("images_per_s_after_startup")), _g(r.get("images_per_s_end_to_end")),
             _g(r.get("startup_s"))] if "error" not in r else [str(r["workers"]), "-", "-", r["error"][:80]]
            for r in c["rows"]]
    return "### Face crop (data_prep.crop, MTCNN)\n\n" + _table(
        ["workers", "images/s after start-up", "images/s end to end", "start-up s"], body)


def _model(r: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted(r["model_options"].items()))
    return f"{r['model']} ({options})" if options else str(r["model"])


def _epoch(p: dict, phases: int) -> str:
    """An epoch, with its phase where the run had several (epochs count from 1 in each phase)."""
    return f"{p['phase']} {p['epoch']}" if phases > 1 else str(p["epoch"])


def _learning_curves(rows: list[dict]) -> str:
    body = []
    for r in rows:
        trained, planned = r["epochs_trained"], r["epochs"]
        epochs = str(trained) if planned in (None, trained) else f"{trained} of {planned}"
        best = ("-" if r["best_val_accuracy"] is None
                else f"{r['best_val_accuracy']:.3f} (min {r['minutes_to_best']:.1f})")
        body.append([r["run"], _model(r), r["recipe"], epochs, _g(r["total_minutes"]), best,
                     *(_g(r[f"test_{m}"], 3) for m in ("accuracy", "balanced_accuracy", "f1_macro"))])
    text = ("### Learning curves (validation accuracy vs training wall-clock, from each run's learning_curve.csv; "
            "figure: learning_curves.png)\n\n"
            + _table(["run", "model", "recipe", "epochs", "minutes", "best val acc (at min)", "test acc",
                      "balanced acc", "macro-F1"], body))
    for r in rows:
        phases = len({p["phase"] for p in r["points"]})
        curve = [[f"{100 * p['share']:.0f} %", _g(p["minutes"]), _epoch(p, phases), _g(p["val_accuracy"], 3),
                  "-" if p["learning_rate"] is None else f"{p['learning_rate']:.2g}"]
                 for p in at_fractions(r["points"])]
        where = "" if r["run"] == r["run_dir"] else f" ({r['run_dir']})"
        text += f"\n#### {r['run']}{where}\n\n" + _table(
            ["share of run", "minutes", "epoch", "val acc", "learning rate"], curve)
    return text


def markdown(results: dict) -> str:
    parts = ["# fer_keras benchmark\n", _machine(results)]
    for note in results.get("notes", []):
        parts.append(f"- {note}\n")
    sections = {"pipeline": _pipeline, "input_bound": _bound, "training": _training, "train_speed": _train_speed,
                "inference": _inference, "crop": _crop, "learning_curve": _learning_curves}
    for key, table in sections.items():
        if results.get(key):
            parts.append(table(results[key]))
            if key != "learning_curve":  # a speed table: the flags it depends on go with it
                parts.append(_flags(results["machine"]))
            if key == "train_speed" and results.get("precision_auto"):
                parts.append(_auto(results["precision_auto"]))
    return "\n".join(parts)


def write_results(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    (out / "results.md").write_text(markdown(results))
    if results.get("learning_curve"):
        from fer_keras.report.figures import learning_curve  # matplotlib: only when there is a curve to draw

        learning_curve(curves_frame(results["learning_curve"]), out / "learning_curves.png")
    return out / "results.json", out / "results.md"
