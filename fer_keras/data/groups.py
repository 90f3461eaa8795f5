"""Groups of images that must stay on one side of every split, read from the file names.

Frames of one CK+ subject in both the training and the test fold inflate the score: the model
recognises the person, not the expression. ``cv_group`` is a regular expression with one
capturing group (``^(S\\d+)_`` takes the subject of ``S010_004_00000017.png``); images whose
group texts are equal are one group, and cross-validation folds and the carved validation split
keep every group whole (scikit-learn's ``StratifiedGroupKFold``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fer_keras.data.readers import DatasetError


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The pattern, compiled; it must be valid and have exactly one capturing group."""
    try:
        rx = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"cv_group {pattern!r} is not a valid regular expression: {err}") from None
    if rx.groups != 1:
        raise ValueError(f"cv_group {pattern!r} must have exactly one capturing group (the group's name, "
                         f"e.g. '^(S\\d+)_'), it has {rx.groups}")
    return rx


def group_ids(paths: list[str], pattern: str, *, where: str) -> np.ndarray:
    """The group of every image: the pattern's group in the file name (searched, not anchored).

    A file the pattern does not match is an error naming it: a silent fallback (one group per
    unmatched image) would give the leaky split the option exists to prevent.
    """
    if not paths:
        raise DatasetError(f"cv_group needs image files, but {where} has none (a CSV dataset has no file names)")
    rx = compile_pattern(pattern)
    groups, unmatched = [], []
    for p in paths:
        m = rx.search(Path(p).name)
        if m is None or not m.group(1):
            unmatched.append(p)
        else:
            groups.append(m.group(1))
    if unmatched:
        raise DatasetError(f"cv_group {pattern!r} matches no group in the file name of {unmatched[0]} "
                           f"({len(unmatched)} of {len(paths)} files of {where} do not match)")
    return np.asarray(groups)


def grouped_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray,
                                                                                                np.ndarray]]:
    """``folds`` (rest, test) index pairs, stratified as far as whole groups allow."""
    from sklearn.model_selection import StratifiedGroupKFold  # here: RunConfig imports this module, not sklearn

    n_groups = len(set(groups.tolist()))
    if n_groups < folds:
        raise DatasetError(f"cannot cut {folds} grouped folds from {n_groups} cv_group group(s)")
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(labels)), labels, groups))


def grouped_carve(index: np.ndarray, labels: np.ndarray, groups: np.ndarray, share: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) of ``index``: about ``share`` of it as validation, made of whole groups.

    Validation is one fold of a ``round(1 / share)``-fold grouped split of ``index``.
    """
    folds = max(2, round(1 / share))
    rest, val = grouped_folds(labels[index], groups[index], folds, seed)[0]
    return index[rest], index[val]
