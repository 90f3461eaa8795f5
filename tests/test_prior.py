"""The class-prior correction (logit adjustment): its arithmetic, tau chosen on validation, its file."""

from __future__ import annotations

import numpy as np
import pytest

from fer_keras.evaluate import prior as prior_correction
from fer_keras.evaluate.prior import PriorCorrection, adjust, choose

CLASSES = ("a", "b", "c")
COUNTS = {"a": 800, "b": 150, "c": 50}  # an imbalanced training split


def _skewed_predictions(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels, probabilities tilted towards the training majority 'a' (as a model trained on
    COUNTS gives): right on 'a', too often 'a' on the others."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n // 3)
    logits = rng.normal(0, 0.5, size=(len(labels), 3))
    logits[np.arange(len(labels)), labels] += 1.0
    logits += np.log(np.array([800, 150, 50]) / 1000)  # the learned prior
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


def test_adjust_is_the_logit_adjustment_formula():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    log_prior = np.log([0.5, 0.3, 0.2])
    expected = probs / np.array([0.5, 0.3, 0.2]) ** 0.5
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(adjust(probs, log_prior, 0.5), expected, rtol=1e-5)
    np.testing.assert_allclose(adjust(probs, log_prior, 0.0), probs, rtol=1e-6)
    assert np.allclose(adjust(probs, log_prior, 1.0).sum(axis=1), 1.0)


def test_tau_is_chosen_on_balanced_accuracy_and_helps_a_balanced_set():
    labels, probs = _skewed_predictions()
    c = choose(COUNTS, labels, probs, CLASSES)
    assert c.tau > 0
    assert c.scores[f"{c.tau:g}"] == max(c.scores.values())
    plain = (probs.argmax(axis=1) == labels).mean()
    corrected = (c.apply(probs, CLASSES).argmax(axis=1) == labels).mean()
    assert corrected > plain + 0.05  # the skew this data has is large: the correction must undo much of it


def test_no_correction_when_none_helps():
    # Predictions already right everywhere: every tau up to where it breaks ties scores the same; the
    # smallest (0, no correction) is chosen.
    labels = np.repeat(np.arange(3), 10)
    probs = np.full((30, 3), 0.01)
    probs[np.arange(30), labels] = 0.98
    assert choose(COUNTS, labels, probs, CLASSES).tau == 0.0


def test_prior_follows_class_names_not_positions():
    c = PriorCorrection.from_counts(COUNTS, tau=1.0)
    probs = np.array([[1 / 3, 1 / 3, 1 / 3]])
    # In order (c, b, a) the rarest class is first, and with equal probabilities it wins after correction.
    assert c.apply(probs, ("c", "b", "a")).argmax() == 0
    assert c.apply(probs, CLASSES).argmax() == 2
    with pytest.raises(ValueError, match="knows no class d"):
        c.apply(probs, ("a", "b", "d"))


def test_empty_class_is_refused_with_its_counts():
    with pytest.raises(ValueError, match="every class"):
        PriorCorrection.from_counts({"a": 3, "b": 0})


def test_saved_and_loaded(tmp_path):
    labels, probs = _skewed_predictions()
    c = choose(COUNTS, labels, probs, CLASSES)
    assert prior_correction.load(tmp_path) is None
    prior_correction.save(tmp_path, c)
    assert prior_correction.load(tmp_path) == c


def test_predictor_applies_the_runs_correction_and_refuses_without_one(tmp_path):
    import keras
    from stored_runs import LEVELS, RES, stored_run, write_set

    from fer_keras.predict.predictor import load_run

    order = list(LEVELS)
    run = stored_run(tmp_path / "run", order)
    # A model unsure in a known way (the same 0.6 / 0.3 / 0.1 for every image), so the correction shows.
    inp = keras.Input((RES, RES, 3))
    dense = keras.layers.Dense(3, activation="softmax")
    out = dense(keras.layers.GlobalAveragePooling2D()(inp))
    dense.set_weights([np.zeros((3, 3)), np.log([0.1, 0.6, 0.3])])  # angry, happy, sad
    keras.Model(inp, out).save(run / "best.keras")
    images = write_set(tmp_path / "set", per_class=2, seed=1)
    with pytest.raises(FileNotFoundError, match="python -m fer_keras.evaluate.prior"):
        load_run(run, prior=True)
    correction = PriorCorrection.from_counts({"angry": 10, "happy": 1000, "sad": 10}, tau=1.0)
    prior_correction.save(run, correction)
    plain, corrected = load_run(run), load_run(run, prior=True)
    assert plain.prior is None and corrected.prior == correction
    files = sorted(images.rglob("*.png"))
    p0 = np.array([[p.probabilities[c] for c in order] for p in plain.predict(files)])
    p1 = np.array([[p.probabilities[c] for c in order] for p in corrected.predict(files)])
    np.testing.assert_allclose(p1, correction.apply(p0, order), atol=1e-4)
    np.testing.assert_allclose(p0, [[0.1, 0.6, 0.3]] * len(files), atol=1e-4)
    assert (p1.argmax(axis=1) == order.index("sad")).all()  # happy's learned majority is taken back
    # A saved copy keeps the correction beside it.
    copy = corrected.save(tmp_path / "copy" / "m.keras")
    assert load_run(copy, prior=True).prior == correction


def test_report_shows_prior_corrected_accuracy_beside_the_plain_one(tmp_path):
    from stored_runs import LEVELS, stored_run

    from fer_keras.report.collect import collect
    from fer_keras.report.tables import display, summarize
    from fer_keras.runs import write_json

    runs = tmp_path / "runs"
    for name, (plain, corrected) in {"a": (0.40, 0.45), "b": (0.50, 0.52)}.items():
        run = stored_run(runs / name, list(LEVELS), crossdomain="wild", seed={"a": 1, "b": 2}[name],
                         model={"a": "sequential_simple", "b": "lenet5"}[name])
        write_json(run / "crossdomain_wild.json", {"n": 10, "accuracy": plain,
                                                   "prior_corrected": {"tau": 0.5, "accuracy": corrected}})
    df, records = collect(runs)
    assert sorted(df["cross_prior_accuracy"]) == [0.45, 0.52]
    shown = display(summarize(df, records))
    assert sorted(shown["cross acc prior-corrected"].str.extract(r"(0\.\d+)")[0]) == ["0.450", "0.520"]
