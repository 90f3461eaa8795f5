"""Grouped cross-validation (cv_group): a subject's images never sit on two sides of a split."""

from pathlib import Path

import pytest
from conftest import write_image
from grid_fakes import write_run

from fer_keras.config import ConfigError, make_config
from fer_keras.data.readers import DatasetError
from fer_keras.data.splits import make_splits
from fer_keras.grid.spec import expand
from fer_keras.report import tables
from fer_keras.report.collect import collect

SUBJECT = r"^(S\d+)_"
CLASSES = ("angry", "happy", "sad")


def _subject(path: str) -> str:
    return Path(path).name.split("_")[0]


@pytest.fixture(scope="module")
def subjects(tmp_path_factory) -> Path:
    """CK+-like names: 20 subjects, each with 3 frames of two expressions (one split-free folder)."""
    root = tmp_path_factory.mktemp("groups") / "faces"
    for s in range(20):
        for k, cls in enumerate((CLASSES[s % 3], CLASSES[(s + 1) % 3])):
            for frame in range(3):
                write_image(root / cls / f"S{s:03d}_{k:03d}_{frame:08d}.png", seed=100 * s + 10 * k + frame, size=16)
    return root


def _sides(splits) -> list[set[str]]:
    return [{_subject(p) for p in part.paths} if part else set() for part in (splits.train, splits.val, splits.test)]


def test_grouped_folds_keep_every_subject_on_one_side(subjects):
    tests = []
    for fold in range(5):
        train, val, test = _sides(make_splits(subjects, folds=5, fold=fold, seed=1, group=SUBJECT))
        assert not (train & val or train & test or val & test), fold
        assert val and test
        tests.append(test)
    assert set().union(*tests) == {f"S{s:03d}" for s in range(20)}
    assert sum(map(len, tests)) == 20  # each subject is tested in exactly one fold


def test_ungrouped_folds_leak_subjects_on_the_same_data(subjects):
    """The grouped test above is not true by chance: without cv_group these names do cross folds."""
    train, _, test = _sides(make_splits(subjects, folds=5, fold=0, seed=1))
    assert train & test


def test_carved_validation_respects_groups_without_folds(subjects):
    splits = make_splits(subjects, seed=3, group=SUBJECT)
    train, val, _ = _sides(splits)
    assert val and not train & val
    assert "cv_group" in splits.val_source


def test_a_pattern_that_matches_nothing_names_a_file(subjects):
    with pytest.raises(DatasetError, match=r"'subject_\(\[0-9\]\+\)'.*/S0\d\d_\d{3}_\d{8}\.png .*120 of 120"):
        make_splits(subjects, folds=5, fold=0, group="subject_([0-9]+)")


def test_more_folds_than_groups_is_a_clear_error(subjects):
    with pytest.raises(DatasetError, match="5 grouped folds from 2 cv_group group"):
        make_splits(subjects, folds=5, fold=0, group=r"^S\d+_\d\d(\d)_")  # the sequence number: 0 or 1


def test_cv_group_is_validated_and_named_in_the_run_id():
    cfg = make_config({"folds": 5, "fold": 2, "cv_group": SUBJECT})
    assert cfg.resolved_run_id().endswith("_s42_grouped_f2")
    for bad in (r"^S\d+_", r"(S)(\d+)", "([unclosed"):
        with pytest.raises(ConfigError, match="cv_group"):
            make_config({"cv_group": bad})


def test_a_grid_crosses_grouped_and_ungrouped_folds_under_distinct_ids():
    grid = expand({"fixed": {"dataset": "ckplus48"}, "grid": {"model": ["resnet18"], "cv_group": [None, SUBJECT]},
                   "cv": 3})
    ids = [p.run_id for p in grid.points]
    assert len(ids) == len(set(ids)) == 6
    grouped = [p for p in grid.points if p.cfg.cv_group == SUBJECT]
    assert [p.run_id for p in grouped] == [f"resnet18_48_ckplus48_conservative_scratch_s42_grouped_f{i}"
                                           for i in range(3)]
    assert {p.group for p in grid.points} == {grouped[0].group, grouped[0].group.replace("_grouped", "")}


def test_the_report_shows_grouped_and_ungrouped_rows_side_by_side(tmp_path):
    base = {"model": "esr", "res": 48, "dataset": "ckplus48", "pretrain": "scratch", "balance": "none",
            "seed": 42, "folds": 2, "paper_faithful": False, "crossdomain": None}
    for tag, group, acc in (("", None, 0.9), ("_grouped", SUBJECT, 0.7)):
        for fold in range(2):
            rid = f"esr_48_ckplus48_none_scratch_s42{tag}_f{fold}"
            write_run(tmp_path / rid, {**base, "fold": fold, "cv_group": group}, val=acc, test=acc, n=100)
    runs, records = collect(tmp_path)
    shown = tables.display(tables.summarize(runs, records)).set_index("CV folds by")
    assert sorted(shown.index) == sorted(["image", SUBJECT])
    assert {"test balanced acc", "test F1 macro"} <= set(shown.columns)
    assert shown.loc["image", "test acc"].startswith("**0.9") and shown.loc[SUBJECT, "test acc"].startswith("0.7")


def test_the_class_warning_names_an_extra_class_instead_of_a_canonical_one(tmp_path):
    for cls in ("angry", "contempt"):
        for i in range(10):
            write_image(tmp_path / "faces" / cls / f"S{i:03d}_001_{i:08d}.png", seed=i + 20 * len(cls), size=16)
    lines = make_splits(tmp_path / "faces", seed=0).report_lines()
    assert lines[1].endswith("so the model will have 2 classes, not 7, contempt among them")
