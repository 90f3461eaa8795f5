"""Post-hoc class-prior correction for a balanced target set: logit adjustment (Menon et al., ICLR 2021).

A model trained on an imbalanced set (FER2013: 1.5 % disgust, 25 % happy) has learned its classes' prior
as well as their faces; a balanced target (BTFER) has another prior. Logit adjustment subtracts
``tau * log(training prior)`` from the log-probabilities and renormalises. ``tau`` is chosen on the
validation split's balanced accuracy (never on a test or cross-domain set) and kept in the run folder
(``prior_correction.json``) so evaluation, cross-domain evaluation and the predictor apply the same
correction. The plain (uncorrected) numbers stay the protocol's; corrected ones are reported beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: The taus tried on validation: 0 (no correction) to 1.5 (over-correction) in steps of 0.1.
TAU_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(16))
METHOD = "logit adjustment (Menon et al. 2021): log p - tau * log(training prior), renormalised"
FILE_NAME = "prior_correction.json"


def adjust(probs: np.ndarray, log_prior: np.ndarray, tau: float) -> np.ndarray:
    """``softmax(log probs - tau * log_prior)`` row by row; ``tau`` 0 returns the probabilities unchanged."""
    probs = np.asarray(probs, dtype=np.float64)
    if tau == 0:
        return probs.astype(np.float32)
    logits = np.log(np.clip(probs, 1e-12, 1.0)) - tau * np.asarray(log_prior, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class PriorCorrection:
    """The training classes' prior and the ``tau`` chosen on validation; ``apply`` corrects probabilities."""

    prior: dict[str, float]
    tau: float
    chosen_on: str = "validation balanced accuracy"
    scores: dict[str, float] = field(default_factory=dict)  # tau -> validation balanced accuracy
    method: str = METHOD

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], tau: float = 0.0, **kwargs) -> PriorCorrection:
        total = sum(counts.values())
        if total <= 0 or any(v <= 0 for v in counts.values()):
            raise ValueError(f"a prior needs at least one training image of every class, got counts {dict(counts)}")
        return cls(prior={c: n / total for c, n in counts.items()}, tau=tau, **kwargs)

    def log_prior(self, class_names: Sequence[str]) -> np.ndarray:
        """log prior in ``class_names`` order: the columns of the probabilities it corrects."""
        missing = [c for c in class_names if c not in self.prior]
        if missing:
            raise ValueError(f"the prior correction knows no class {', '.join(missing)} "
                             f"(its classes: {', '.join(self.prior)})")
        return np.log(np.array([self.prior[c] for c in class_names], dtype=np.float64))

    def apply(self, probs: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
        return adjust(probs, self.log_prior(class_names), self.tau)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> PriorCorrection:
        return cls(prior=dict(data["prior"]), tau=float(data["tau"]), chosen_on=data.get("chosen_on", ""),
                   scores=dict(data.get("scores", {})), method=data.get("method", METHOD))


def choose(counts: Mapping[str, int], labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
           grid: Sequence[float] = TAU_GRID) -> PriorCorrection:
    """The tau of ``grid`` with the best balanced accuracy on these (validation) predictions; the smallest
    such tau on ties, so no correction is chosen when none helps."""
    from sklearn.metrics import balanced_accuracy_score  # imported here: commands load this module early

    base = PriorCorrection.from_counts(counts)
    log_prior = base.log_prior(class_names)
    scores = {f"{t:g}": float(balanced_accuracy_score(labels, adjust(probs, log_prior, t).argmax(axis=1)))
              for t in grid}
    best = max(scores.values())
    tau = min(float(t) for t, s in scores.items() if s == best)
    return PriorCorrection(prior=base.prior, tau=tau, scores=scores)


def load(run_dir: Path) -> PriorCorrection | None:
    """The run's prior correction, or None for a run evaluated before it existed."""
    from fer_keras.runs import read_json

    path = Path(run_dir) / FILE_NAME
    return PriorCorrection.from_json(read_json(path)) if path.is_file() else None


def save(run_dir: Path, correction: PriorCorrection) -> Path:
    from fer_keras.runs import write_json

    path = Path(run_dir) / FILE_NAME
    write_json(path, correction.to_json())
    return path


def fit_run(run_dir: Path, *, data_root: Path | None = None) -> PriorCorrection:
    """Choose and save the prior correction of a run evaluated before it existed: its best model on its own
    validation split (as training carved it), with the TTA it was evaluated with."""
    from fer_keras.data.splits import splits_for
    from fer_keras.evaluate.evaluator import predict_probs
    from fer_keras.runs import Run

    run = Run(Path(run_dir))
    cfg = run.config(data_root=data_root)
    splits = splits_for(cfg)
    probs = predict_probs(run.model(), splits.val, cfg.res, model_classes=run.classes(), pipeline=cfg.pipeline,
                          tta=cfg.tta())
    correction = choose(splits.train.counts(), splits.val.labels, probs, splits.val.class_names)
    save(run.dir, correction)
    return correction


def main(argv: list[str] | None = None) -> int:
    from fer_keras.console import CommandParser, quiet_tensorflow

    p = CommandParser(prog="python -m fer_keras.evaluate.prior",
                      description="choose (on validation) and save the prior correction of finished runs")
    p.add_argument("runs", nargs="+", type=Path, help="run folders")
    p.add_argument("--data-root", type=Path, help="where the runs' datasets are now, if they moved")
    args = p.parse_args(argv)
    quiet_tensorflow(args.verbose)
    for run in args.runs:
        c = fit_run(run, data_root=args.data_root)
        scores = ", ".join(f"{t}: {s:.4f}" for t, s in c.scores.items())
        print(f"{run}: tau {c.tau:g} (validation balanced accuracy by tau: {scores})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
