"""The built-in model's card: numbers measured on the very files shipped, with today's decoding.

A card copied from the run's metrics.json describes the run's checkpoint as it was scored then
(before a decoder change, in bfloat16); the float32 copy that ships may score otherwise. So the
shipping step loads the file it wrote, evaluates it on the run's validation and test splits (with
the run's test-time augmentation and without it, and on the test images with no copy in training),
scores the int8 TFLite file it copied, and writes ``card.json`` and ``card.md`` from that alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fer_keras.data.pipeline import eval_dataset
from fer_keras.data.readers import evaluation_set
from fer_keras.data.splits import splits_for
from fer_keras.evaluate import prior as prior_correction
from fer_keras.evaluate.dedup import dedup_scores, reference_of
from fer_keras.evaluate.evaluator import corrected_metrics, predict_probs
from fer_keras.evaluate.metrics import classification_metrics
from fer_keras.evaluate.prior import PriorCorrection
from fer_keras.evaluate.tta import NO_TTA
from fer_keras.labels import output_columns
from fer_keras.runs import Run, write_json, write_text

CARD_JSON = "card.json"
CARD_MD = "card.md"
TFLITE = "model_int8.tflite"
HEADLINE = ("n", "accuracy", "balanced_accuracy", "f1_macro")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _tflite_accuracy(path: Path, images, res: int, pipeline: str, model_classes: list[str],
                     keras_pred: np.ndarray) -> dict:
    from fer_keras.export.tflite import TFLiteModel, float_ops

    content = Path(path).read_bytes()
    lite = TFLiteModel(content)
    probs = np.concatenate([lite(x.numpy()) for x, _ in eval_dataset(images, res, 64, pipeline=pipeline)])
    pred = probs[:, output_columns(model_classes, images.class_names, test_name=images.name)].argmax(1)
    return {"file": Path(path).name, "sha256": _sha256(path), "n": int(len(pred)),
            "accuracy": float(np.mean(pred == images.labels)),
            "same_top_class_as_keras": float(np.mean(pred == keras_pred)), "float_ops": float_ops(content)}


def _with_prior(entry: dict, labels: np.ndarray, probs: np.ndarray, class_names, prior: PriorCorrection | None
                ) -> dict:
    if prior is not None:
        entry["prior_corrected"] = corrected_metrics(labels, probs, class_names, prior)
    return entry


def _latency_ms(model, res: int, repeats: int = 30) -> float:
    """Median wall time of one image through the Keras file (traced once first, as fer-predict calls it)."""
    import time

    x = np.zeros((1, res, res, 3), "float32")
    model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def measure(dest: Path, run_dir: Path, *, data_root: Path | None = None, batch: int = 64,
            cross: Path | None = None) -> dict:
    """Evaluate the model shipped in ``dest`` (made from ``run_dir``) on the run's own splits, and on the
    cross-domain set ``cross`` if given; with the shipped prior correction beside the plain numbers."""
    import tensorflow as tf

    shipped, run = Run(dest), Run(run_dir)
    cfg = run.config(data_root=data_root)
    splits = splits_for(cfg)
    if splits.test is None:
        raise ValueError(f"{run_dir}'s dataset {cfg.dataset_dir()} has no test split to put on the card")
    model, classes, tta = shipped.model(), shipped.classes(), cfg.tta()
    card = {"run": run.name, "model_file": shipped.model_file.name, "model_sha256": _sha256(shipped.model_file),
            "dataset": str(cfg.dataset_dir()), "val_source": splits.val_source, "tta": tta.name,
            "decoding": {"pipeline": cfg.pipeline, "tensorflow": tf.__version__}}
    reference = reference_of(splits)
    prior = prior_correction.load(dest)
    plain_pred = None
    for key, images, views in (("validation", splits.val, tta), ("test", splits.test, tta),
                               ("test_no_tta", splits.test, NO_TTA)):
        probs = predict_probs(model, images, cfg.res, model_classes=classes, pipeline=cfg.pipeline, batch=batch,
                              tta=views)
        m = classification_metrics(images.labels, probs, images.class_names)
        card[key] = _with_prior({k: m[k] for k in HEADLINE} | {"tta": views.name}, images.labels, probs,
                                images.class_names, prior)
        if key != "validation":
            card[key]["dedup"] = dedup_scores(reference, images,
                                              lambda p=probs, i=images: (i.labels, p, list(i.class_names)))
        plain_pred = probs.argmax(1) if key == "test_no_tta" else plain_pred
    if cross is not None:
        images = evaluation_set(Path(cross))
        probs = predict_probs(model, images, cfg.res, model_classes=classes, pipeline=cfg.pipeline, batch=batch,
                              tta=tta)
        m = classification_metrics(images.labels, probs, images.class_names)
        card["cross"] = _with_prior({"set": str(cross), "tta": tta.name, **{k: m[k] for k in HEADLINE},
                                     "skipped": len(images.skipped),
                                     "recall": m["per_class_accuracy"]}, images.labels, probs,
                                    images.class_names, prior)
    if (dest / TFLITE).is_file():
        card["tflite_int8"] = _tflite_accuracy(dest / TFLITE, splits.test, cfg.res, cfg.pipeline, classes, plain_pred)
    views = (2 if tta.flip else 1) * (3 if tta.zoom else 1)
    card["latency_ms"] = {"keras_one_image_median": round(_latency_ms(model, cfg.res), 2), "tta_views": views}
    return card


def card_markdown(card: dict) -> str:
    """The card's numbers as README-ready lines (every figure from ``card``)."""
    def three(m: dict) -> str:
        return (f"accuracy {m['accuracy']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f}, "
                f"macro-F1 {m['f1_macro']:.3f}")

    test, plain, val = card["test"], card["test_no_tta"], card["validation"]
    d, dp = test["dedup"], plain["dedup"]
    lines = [
        "# The built-in model: measured on the shipped file",
        "",
        f"`{card['model_file']}` (sha256 {card['model_sha256'][:16]}...) from run `{card['run']}`, evaluated by the "
        f"shipping step on `{card['dataset']}` ({card['decoding']['pipeline']} decoding, TensorFlow "
        f"{card['decoding']['tensorflow']}).",
        "",
        f"- **Test ({test['n']:,} images)**, with the run's test-time augmentation ({test['tta']}): {three(test)} "
        f"(validation, {val['n']:,} images: {three(val)}).",
        f"- Without test-time augmentation: {three(plain)}.",
        f"- **Deduplicated test** ({d['unique']:,} images with no exact or near copy among the "
        f"{d['reference_images']:,} training and validation images; {d['exact']} exact and {d['near']} near copies "
        f"left out): accuracy {d['accuracy']:.3f} ({test['tta']}), {dp['accuracy']:.3f} without augmentation.",
    ]
    if "cross" in card:
        c = card["cross"]
        lines.append(f"- **Cross-domain** `{c['set']}` ({c['n']:,} images, {c['skipped']} skipped as unusable, "
                     f"{c['tta']}): {three(c)}.")
    for key, where in (("test", f"test, {test['tta']}"), ("cross", "cross-domain")):
        pc = card.get(key, {}).get("prior_corrected")
        if pc:
            lines.append(f"- Prior-corrected ({where}; logit adjustment, tau {pc['tau']:g} chosen on validation "
                         f"balanced accuracy): {three(pc)}.")
    if "latency_ms" in card:
        lat = card["latency_ms"]
        lines.append(f"- Latency: {lat['keras_one_image_median']:.1f} ms per image through the Keras file "
                     f"(median, one call; the test-time augmentation makes {lat['tta_views']} calls' worth).")
    if "tflite_int8" in card:
        t = card["tflite_int8"]
        lines.append(f"- int8 TFLite file `{t['file']}`: accuracy {t['accuracy']:.3f} without augmentation "
                     f"({t['same_top_class_as_keras']:.1%} the same top class as the Keras file"
                     + (f"; not full-integer, in float32: {', '.join(dict.fromkeys(t['float_ops']))}"
                        if t.get("float_ops") else "")
                     + ").")
    return "\n".join(lines) + "\n"


def write_card(dest: Path, card: dict) -> None:
    write_json(Path(dest) / CARD_JSON, card)
    write_text(Path(dest) / CARD_MD, card_markdown(card))
