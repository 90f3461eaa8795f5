"""Cross-validation folds: stratified, disjoint, covering the whole dataset, 80/10/10 with 10 folds."""

from collections import Counter

import numpy as np
import pytest
from conftest import make_folder_dataset, write_image

from fer_keras.config import ConfigError, make_config
from fer_keras.data.splits import make_splits

COUNTS = {"happy": 60, "sad": 30, "angry": 20}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv") / "faces"
    make_folder_dataset(root / "train", {c: n - 10 for c, n in COUNTS.items()}, size=16)
    # The dataset's own test split is pooled too: cross-validation ignores the given split.
    for c in COUNTS:
        for i in range(10):
            write_image(root / "test" / c / f"t{i}.png", seed=1000 + i + 50 * len(c), size=16)
    return root


def test_folds_are_stratified_disjoint_and_cover_everything(dataset):
    folds = [make_splits(dataset, folds=5, fold=i, seed=3) for i in range(5)]
    tests = [set(s.test.paths) for s in folds]
    everything = set().union(*tests)
    assert len(everything) == sum(COUNTS.values()) and sum(map(len, tests)) == len(everything)
    for s in folds:
        train, val, test = set(s.train.paths), set(s.val.paths), set(s.test.paths)
        assert not (train & val or train & test or val & test)
        assert len(train | val | test) == sum(COUNTS.values())
        counts = Counter(s.test.class_names[i] for i in s.test.labels)
        for c, n in COUNTS.items():
            assert abs(counts[c] - n / 5) <= 1, (c, counts)
        assert abs(len(s.val) - 0.1 * len(everything)) <= 3  # val_fraction of all images


def test_ten_folds_give_80_10_10_and_are_reproducible(dataset):
    s = make_splits(dataset, folds=10, fold=7, seed=1)
    n = sum(COUNTS.values())
    assert (len(s.train), len(s.val), len(s.test)) == pytest.approx((0.8 * n, 0.1 * n, 0.1 * n), abs=2)
    again = make_splits(dataset, folds=10, fold=7, seed=1)
    assert again.test.paths == s.test.paths and np.array_equal(again.train.labels, s.train.labels)
    assert make_splits(dataset, folds=10, fold=7, seed=2).test.paths != s.test.paths
    limited = make_splits(dataset, folds=10, fold=7, seed=1, limit=5)
    assert max(Counter(limited.train.labels.tolist()).values()) == 5 and limited.test.paths == s.test.paths


def test_fold_settings_are_validated():
    assert make_config({"folds": 5, "fold": 4}).resolved_run_id().endswith("_s42_f4")
    for bad in ({"folds": 5}, {"fold": 1}, {"folds": 3, "fold": 3}, {"folds": 1, "fold": 0},
                {"folds": 5, "fold": 0, "paper_faithful": True}):
        with pytest.raises(ConfigError):
            make_config(bad)
