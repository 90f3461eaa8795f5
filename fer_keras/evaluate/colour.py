"""``python -m fer_keras.evaluate.colour --data SET RUN...``: a run as trained and with grey and equalised input.

For a run trained on grey images (FER2013, CK+), a model with ``color: grey`` trains exactly as the rgb
one did (the mean of three equal channels is the channel), so the same checkpoint with
:func:`fer_keras.models.preprocessing.grey_input` *is* the grey model: this measures what the ``color``
option does on a colour set without training again. Likewise FER2013's images are already histogram-equalised,
so :func:`fer_keras.models.preprocessing.equalized_input` on such a checkpoint stands for ``equalize: true``
(rows ``grey+eq``, ``rgb+eq``). Each row: accuracy, balanced accuracy and macro-F1,
plain and with the run's prior correction (``prior_correction.json``) when it has one. Nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_keras.console import CommandParser, quiet_tensorflow

COLUMNS = ("accuracy", "balanced_accuracy", "f1_macro")


def compare(run_dir: Path, data: Path) -> list[dict]:
    """One row per input (rgb, grey, each also equalised) of ``run_dir``'s best model on the set ``data``."""
    from fer_keras.data.readers import evaluation_set
    from fer_keras.evaluate import prior as prior_correction
    from fer_keras.evaluate.evaluator import corrected_metrics, predict_probs
    from fer_keras.evaluate.metrics import classification_metrics
    from fer_keras.models.preprocessing import equalized_input, grey_input, has_equalized_input, has_grey_input
    from fer_keras.runs import Run

    run = Run(run_dir)
    cfg, classes, prior = run.config(), run.classes(), prior_correction.load(run.dir)
    images = evaluation_set(data)
    model = run.model()
    models = {"grey": model} if has_grey_input(model) else {"rgb": model, "grey": grey_input(model)}
    if has_equalized_input(model):
        models = {f"{k}+eq": m for k, m in models.items()}
    else:
        models.update({f"{k}+eq": equalized_input(m) for k, m in list(models.items())})
    rows = []
    for colour, m in models.items():
        probs = predict_probs(m, images, cfg.res, model_classes=classes, pipeline=cfg.pipeline, tta=cfg.tta())
        row = {"run": run.name, "input": colour, "n": len(images),
               **{k: classification_metrics(images.labels, probs, images.class_names)[k] for k in COLUMNS}}
        if prior is not None:
            corrected = corrected_metrics(images.labels, probs, images.class_names, prior)
            row.update({"tau": prior.tau, **{f"prior_{k}": corrected[k] for k in COLUMNS}})
        rows.append(row)
    return rows


def _num(row: dict, key: str) -> str:
    return f"{row[key]:.4f}" if key in row else "-"


def table(rows: list[dict]) -> str:
    head = (f"{'run':<50}{'input':>9}{'n':>6}{'acc':>8}{'bal acc':>9}{'F1m':>8}{'tau':>6}{'prior acc':>11}"
            f"{'prior bal':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['run'][:49]:<50}{r['input']:>9}{r['n']:>6}{_num(r, 'accuracy'):>8}"
                     f"{_num(r, 'balanced_accuracy'):>9}{_num(r, 'f1_macro'):>8}{r.get('tau', '-'):>6}"
                     f"{_num(r, 'prior_accuracy'):>11}{_num(r, 'prior_balanced_accuracy'):>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = CommandParser(prog="python -m fer_keras.evaluate.colour", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders")
    p.add_argument("--data", type=Path, required=True, help="a colour set of class folders (e.g. BTFER-48 dev)")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: {args.data} (--data) is not a folder of class folders", file=sys.stderr)
        return 2
    quiet_tensorflow(args.verbose)
    print(table([row for run in args.runs for row in compare(run, args.data)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
