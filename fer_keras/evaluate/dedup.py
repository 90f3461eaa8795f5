"""Deduplicated scores: the test (or cross-domain) images with no exact or near duplicate in training.

About 7 % of FER2013's test images are byte copies of training images and the model scores far
better on them, so every test accuracy gets a deduplicated one beside it (``dedup`` in the set's
entry of metrics.json or crossdomain_<set>.json: the counts, the cached list's file and the
metrics on the images left). The reference is what the run learnt or chose on: its training and
validation images. Scores come from the per-image predictions file, so finished runs are
deduplicated without a model: ``python -m fer_keras.evaluate.dedup --runs runs`` adds them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from fer_keras.config import DEFAULT_RUNS, RunConfig
from fer_keras.console import CommandParser
from fer_keras.data import duplicates
from fer_keras.data.readers import DatasetError, ImageSet, evaluation_set, read_dataset
from fer_keras.data.splits import Splits, splits_for
from fer_keras.evaluate.metrics import classification_metrics
from fer_keras.runs import Run, crossdomain_tag, find_runs, read_json, write_json

#: Metrics a deduplicated entry keeps.
KEPT = ("accuracy", "balanced_accuracy", "f1_macro")


def reference_of(splits: Splits) -> ImageSet:
    """The images a run trained and selected its checkpoint on (validation unless it is the test split)."""
    sets = [splits.train] if splits.val is splits.test else [splits.train, splits.val]
    return duplicates.pooled(sets, f"{splits.train.name} (train + val)")


_REFERENCES: dict[str, ImageSet] = {}


def training_reference(cfg: RunConfig) -> ImageSet:
    """Every image of the run's dataset outside its test split (train and val folders; a cross-validated
    run's whole pool), read once per process: the cross-domain runs of one dataset share it."""
    path = cfg.dataset_dir()
    if str(path) not in _REFERENCES:
        parts = read_dataset(path)
        kept = parts if cfg.folds is not None else {k: v for k, v in parts.items() if k != "test"}
        _REFERENCES[str(path)] = duplicates.pooled([kept[k] for k in sorted(kept)],
                                                   f"{Path(path).name} ({' + '.join(sorted(kept))})")
    return _REFERENCES[str(path)]


def _read_predictions(path: Path, images: ImageSet) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(labels, probabilities, class names) of a predictions file, checked to be ``images`` in order."""
    p = pd.read_csv(path)
    files = images.paths or [f"{images.name}#{i}" for i in range(len(images))]
    names = [Path(f).name for f in files]
    if len(p) != len(files) or (images.paths and [Path(f).name for f in p["file"]] != names):
        raise ValueError(f"{path} does not list the {len(files)} images of {images.name} in order; "
                         "evaluate the run again")
    prob_cols = [c for c in p.columns if c.startswith("p_")]
    return p["y_true"].to_numpy(int), p[prob_cols].to_numpy(float), [c[2:] for c in prob_cols]


def dedup_entry(reference: ImageSet, images: ImageSet, predictions: Path,
                evaluated: list[str] | None = None) -> dict:
    """Duplicate counts of ``images`` against ``reference`` and the metrics on the unique ones, read from
    the per-image ``predictions`` file."""
    return dedup_scores(reference, images, lambda: _read_predictions(predictions, images), evaluated)


def dedup_scores(reference: ImageSet, images: ImageSet,
                 predicted: Callable[[], tuple[np.ndarray, np.ndarray, list[str]]],
                 evaluated: list[str] | None = None) -> dict:
    """:func:`dedup_entry` from ``predicted()``: (labels, probabilities, class names) of ``images`` in order."""
    kinds, cache = duplicates.duplicates_in(reference, images)
    out = {**duplicates.summary(kinds), "list": str(cache), "reference": reference.name,
           "reference_images": len(reference)}
    keep = kinds == ""
    if keep.any():
        labels, probs, classes = predicted()
        m = classification_metrics(labels[keep], probs[keep], classes, evaluated=evaluated)
        out.update({k: m[k] for k in KEPT})
    return out


def crossdomain_dedup(cfg: RunConfig, images: ImageSet, predictions: Path, evaluated: list[str] | None) -> dict:
    """:func:`dedup_entry` against the run's training images; an ``error`` entry when they cannot be read."""
    try:
        reference = training_reference(cfg)
    except (DatasetError, OSError) as err:
        return {"error": f"the training data could not be read, so duplicates were not counted ({err})"}
    return dedup_entry(reference, images, predictions, evaluated)


def dedup_line(entry: dict, what: str) -> str:
    """'test: 1110 of 7177 images duplicate a training image (567 exact, 543 near ...); deduplicated accuracy ...'."""
    dup = entry["exact"] + entry["near"]
    acc = f"; deduplicated accuracy {entry['accuracy']:.4f} on {entry['unique']}" if "accuracy" in entry else ""
    return (f"{what}: {dup} of {entry['images']} images duplicate a training image ({entry['exact']} exact, "
            f"{entry['near']} near: phash within {entry['threshold']} bits){acc}")


def add_dedup(run_dir: Path, *, data_root: Path | None = None, force: bool = False) -> list[str]:
    """Add ``dedup`` to the test entry of a finished run's metrics.json and to its cross-domain results."""
    run = Run(run_dir)
    cfg = run.config(data_root=data_root)
    metrics, lines = run.metrics(), []
    reference = None
    test = metrics.get("test")
    if test is not None and (force or "dedup" not in test):
        splits = splits_for(cfg)
        reference = reference_of(splits)
        test["dedup"] = dedup_entry(reference, splits.test, run.predictions_file("test"))
        write_json(run.metrics_file, metrics)
        lines.append(dedup_line(test["dedup"], f"{run.name} test"))
    for name, file in run.crossdomain_files().items():
        result = read_json(file)
        if "dedup" in result and not force:
            continue
        reference = reference if reference is not None else training_reference(cfg)
        images = evaluation_set(Path(result["set"]))
        result["dedup"] = dedup_entry(reference, images, run.predictions_file(crossdomain_tag(name)),
                                      result.get("classes_evaluated"))
        write_json(file, result)
        lines.append(dedup_line(result["dedup"], f"{run.name} on {name}"))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = CommandParser(prog="python -m fer_keras.evaluate.dedup", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help=f"folder holding run folders ({DEFAULT_RUNS})")
    p.add_argument("--data-root", type=Path, help="where the runs' datasets are now, if they moved")
    p.add_argument("--force", action="store_true", help="recompute runs that already have a deduplicated score")
    args = p.parse_args(argv)
    failed = 0
    for run in find_runs(args.runs):
        try:
            for line in add_dedup(run, data_root=args.data_root, force=args.force):
                print(line)
        except (DatasetError, ValueError, OSError, KeyError) as err:
            print(f"error: {run.name}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
