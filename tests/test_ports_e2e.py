"""The four ported models train end to end through train_run and learn: on three classes told apart by
brightness (stored_runs.write_set) a working port beats chance (1/3) clearly within two epochs.

For time, the ports that learn from less data train on ``few``: 24 images a class, so that the training
(64), validation (8) and test (24) images fill batches of 8 exactly and no step or prediction function is
traced twice for a short last batch. SE-ResNet18 needs ``bright``'s 48 a class to learn within two epochs."""

import pytest
from stored_runs import write_set

from fer_keras.config import make_config
from fer_keras.models.catalog import TLF_CHECKPOINT
from fer_keras.runs import Run, read_json
from fer_keras.train.loop import train_run

TINY = {"res": 32, "epochs": 2, "batch": 8, "lr": 3e-3, "tensorboard": False, "crossdomain": None,
        "dataset": "bright"}
#: Test accuracy a port must reach: chance (1/3) plus a clear margin (a port that learned scores about 1).
LEARNED = 1 / 3 + 0.25


@pytest.fixture(scope="module")
def bright(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_set(root / "bright" / "train", 48, seed=1)
    write_set(root / "bright" / "test", 10, seed=2)
    return root


@pytest.fixture(scope="module")
def few(tmp_path_factory):
    root = tmp_path_factory.mktemp("few")
    write_set(root / "bright" / "train", 24, seed=1)  # 64 train, 8 validation (10%, stratified)
    write_set(root / "bright" / "test", 8, seed=2)
    return root


def _run(data, tmp_path, model, **kw):
    cfg = make_config({**TINY, "model": model, "data_root": str(data), "out": str(tmp_path), **kw})
    run = train_run(cfg, verbose=0)
    assert Run(run).is_finished()
    metrics = read_json(run / "metrics.json")
    assert metrics["test"]["n"] == len(list((data / "bright" / "test").glob("*/*.png")))  # each test image once
    assert metrics["test"]["accuracy"] >= LEARNED, metrics["test"]["accuracy"]
    return run, metrics


def test_se_resnet18_trains(bright, tmp_path):
    _run(bright, tmp_path, "se_resnet18", model_options={"ratio": 8})


RESMASKING_TINY = {"mask_growth": 1, "stage_blocks": [1, 1, 1, 1]}


def test_resmasking_net_trains(few, tmp_path):
    """One short epoch of 24 images, for time (the masking network is the slowest port): it runs end to end;
    the slow test below shows it learns."""
    cfg = make_config({**TINY, "model": "resmasking_net", "data_root": str(few), "out": str(tmp_path),
                       "epochs": 1, "limit_per_class": 8, "model_options": RESMASKING_TINY})
    run = train_run(cfg, verbose=0)
    assert Run(run).is_finished() and read_json(run / "metrics.json")["test"]["n"] == 3 * 8


@pytest.mark.slow  # about 4 minutes on 2 shared cores
def test_resmasking_net_learns(bright, tmp_path):
    _run(bright, tmp_path, "resmasking_net", model_options=RESMASKING_TINY, epochs=4)


@pytest.mark.slow  # the protocol's fit; the progressive test covers ESR's loss and branch accuracies
def test_esr_trains_jointly_with_per_branch_accuracy(bright, tmp_path):
    run, metrics = _run(bright, tmp_path, "esr", model_options={"branches": 2})
    assert len(metrics["val"]["branch_accuracy"]) == 2 and len(metrics["test"]["branch_accuracy"]) == 2
    assert read_json(run / "state.json")["phases_done"] == ["main"]


def test_esr_trains_progressively_one_branch_at_a_time(few, tmp_path):
    run, metrics = _run(few, tmp_path, "esr", model_options={"branches": 2, "schedule": "progressive"})
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
def test_tlf_resnet18_trains_embedding_then_head(few, tmp_path, options):
    extra = {"sampling": "weighted", "balance": "none"} if options["head"] == "svm" else {}
    run, _ = _run(few, tmp_path, "tlf_resnet18", model_options=options, **extra)
    head = read_json(run / "head.json")
    assert head["head"] == options["head"] and 0 <= head["train_accuracy"] <= 1
    assert read_json(run / "state.json")["phases_done"] == ["embedding", "head"]
    assert (run / "embedding.keras").is_file() and (run / "best.json").is_file()
    # The embedding is chosen by its validation centroid score, not by the triplet loss (a collapsed embedding's
    # is low); best.json is the embedding's score.
    assert TLF_CHECKPOINT in read_json(run / "embedding.json") and TLF_CHECKPOINT in read_json(run / "best.json")
    assert TLF_CHECKPOINT in (run / "log_embedding.csv").read_text().splitlines()[0].split(",")
