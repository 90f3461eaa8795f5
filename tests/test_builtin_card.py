"""The shipping step's card comes from evaluating the files it wrote (issue 24, item 3)."""

from __future__ import annotations

import json

import pytest
from stored_runs import LEVELS, brightness_model, stored_run, write_set

from fer_keras.data import duplicates
from fer_keras.predict.builtin import main as ship_main
from fer_keras.predict.card import CARD_JSON, CARD_MD, card_markdown, measure
from fer_keras.runs import write_json

CANONICAL = sorted(LEVELS)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(duplicates.CACHE_ENV, str(tmp_path / "cache"))


def test_card_figures_are_measured_on_the_written_file(tmp_path, capsys):
    write_set(tmp_path / "data" / "d" / "train", 10, seed=1)
    write_set(tmp_path / "data" / "d" / "test", 4, seed=2)
    run = stored_run(tmp_path / "run", CANONICAL, data_root=str(tmp_path / "data"), dataset="d")
    write_json(run / "run_info.json", {"preprocessing": "none"})
    write_json(run / "metrics.json", {"test": {"accuracy": 0.5, "n": 12}})  # stale figures: never on the card
    dest = tmp_path / "builtin"
    assert ship_main([str(run), "--dest", str(dest)]) == 0, capsys.readouterr().err
    card = json.loads((dest / CARD_JSON).read_text())
    assert card["test"]["n"] == 12 and card["test"]["accuracy"] == 1.0 and card["test_no_tta"]["accuracy"] == 1.0
    assert card["test"]["dedup"]["images"] == 12 and card["validation"]["n"] == 3
    assert (dest / CARD_MD).read_text() == card_markdown(card)
    assert "accuracy 1.000" in capsys.readouterr().out  # the command shows the card it wrote

    # The card reads the shipped file itself: a different file there gives different figures.
    brightness_model(["sad", "angry", "happy"]).save(dest / "best.keras")  # outputs no longer in classes.json order
    again = measure(dest, run)
    assert again["test"]["accuracy"] == 0.0 and again["model_sha256"] != card["model_sha256"]


def test_shipping_without_the_runs_data_fails_and_says_where(tmp_path, capsys):
    run = stored_run(tmp_path / "run", CANONICAL, data_root=str(tmp_path / "nowhere"), dataset="d")
    write_json(run / "run_info.json", {"preprocessing": "none"})
    old = tmp_path / "builtin"
    old.mkdir()
    (old / "best.keras").write_bytes(b"the model shipped before")
    assert ship_main([str(run), "--dest", str(old)]) == 2
    assert "nowhere" in capsys.readouterr().err
    # Nothing half-shipped: the earlier model stays, no card without a measurement, no staging folder left.
    assert (old / "best.keras").read_bytes() == b"the model shipped before"
    assert not (old / CARD_JSON).exists() and not (tmp_path / ".builtin.shipping").exists()


def test_card_scores_a_cross_domain_set_and_the_shipped_prior_correction(tmp_path, capsys):
    from fer_keras.evaluate import prior as prior_correction
    from fer_keras.evaluate.prior import PriorCorrection

    write_set(tmp_path / "data" / "d" / "train", 10, seed=1)
    write_set(tmp_path / "data" / "d" / "test", 4, seed=2)
    cross = write_set(tmp_path / "wild", 3, seed=3)
    run = stored_run(tmp_path / "run", CANONICAL, data_root=str(tmp_path / "data"), dataset="d")
    write_json(run / "run_info.json", {"preprocessing": "none"})
    prior_correction.save(run, PriorCorrection.from_counts({c: 10 for c in CANONICAL}, tau=0.5))
    dest = tmp_path / "builtin"
    assert ship_main([str(run), "--dest", str(dest), "--cross", str(cross)]) == 0, capsys.readouterr().err
    assert prior_correction.load(dest) == prior_correction.load(run)  # ships beside the model
    card = json.loads((dest / CARD_JSON).read_text())
    assert card["cross"]["n"] == 9 and card["cross"]["accuracy"] == 1.0
    assert card["test"]["prior_corrected"]["tau"] == 0.5 and card["cross"]["prior_corrected"]["accuracy"] == 1.0
    assert card["latency_ms"]["keras_one_image_median"] > 0
    text = (dest / CARD_MD).read_text()
    assert "Cross-domain" in text and "tau 0.5" in text
