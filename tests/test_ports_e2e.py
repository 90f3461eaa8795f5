"""The four ported models train end to end through train_run on the synthetic demo data."""

import pytest

from fer_keras.config import make_config
from fer_keras.runs import Run, read_json
from fer_keras.train.loop import train_run

TINY = {"res": 32, "epochs": 1, "batch": 16, "limit_per_class": 8, "lr": 1e-3, "tensorboard": False,
        "crossdomain": None}


def _run(demo_root, tmp_path, model, **kw):
    cfg = make_config({**TINY, "model": model, "data_root": str(demo_root), "out": str(tmp_path), **kw})
    run = train_run(cfg, verbose=0)
    assert Run(run).is_finished()
    metrics = read_json(run / "metrics.json")
    assert 0 <= metrics["test"]["accuracy"] <= 1 and metrics["test"]["n"] == 7 * 16
    return run, metrics


def test_se_resnet18_trains(demo_root, tmp_path):
    _run(demo_root, tmp_path, "se_resnet18", model_options={"ratio": 8})


def test_resmasking_net_trains(demo_root, tmp_path):
    _run(demo_root, tmp_path, "resmasking_net", model_options={"mask_growth": 1, "stage_blocks": [1, 1, 1, 1]})


@pytest.mark.slow  # the protocol's fit; the progressive test covers ESR's loss and branch accuracies
def test_esr_trains_jointly_with_per_branch_accuracy(demo_root, tmp_path):
    run, metrics = _run(demo_root, tmp_path, "esr", model_options={"branches": 2})
    assert len(metrics["val"]["branch_accuracy"]) == 2 and len(metrics["test"]["branch_accuracy"]) == 2
    assert read_json(run / "state.json")["phases_done"] == ["main"]


def test_esr_trains_progressively_one_branch_at_a_time(demo_root, tmp_path):
    run, metrics = _run(demo_root, tmp_path, "esr", model_options={"branches": 2, "schedule": "progressive"})
    assert read_json(run / "state.json")["phases_done"] == ["stage1", "stage2"]
    assert (run / "esr_stage1.keras").is_file() and (run / "log_stage2.csv").is_file()
    import keras

    first = keras.models.load_model(run / "esr_stage1.keras", safe_mode=True, compile=False)
    final = Run(run).model()
    # Stage 2 trained only the new branch: the base and branch 1 are those of stage 1's best model.
    for name in ("base1_conv", "base4_bn", "branch1_4_conv", "branch1_predictions"):
        for a, b in zip(first.get_layer(name).get_weights(), final.get_layer(name).get_weights(), strict=True):
            assert (a == b).all(), name
    assert len(metrics["test"]["branch_accuracy"]) == 2


@pytest.mark.parametrize("options", [
    {"head": "svm"},
    pytest.param({"head": "logreg", "mining": "batch_all", "margin": 0.5}, marks=pytest.mark.slow),
])
def test_tlf_resnet18_trains_embedding_then_head(demo_root, tmp_path, options):
    extra = {"sampling": "weighted", "balance": "none"} if options["head"] == "svm" else {}
    run, _ = _run(demo_root, tmp_path, "tlf_resnet18", model_options=options, **extra)
    head = read_json(run / "head.json")
    assert head["head"] == options["head"] and 0 <= head["train_accuracy"] <= 1
    assert read_json(run / "state.json")["phases_done"] == ["embedding", "head"]
    assert (run / "embedding.keras").is_file() and (run / "best.json").is_file()
