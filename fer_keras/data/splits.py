"""Train / validation / test splits of a dataset, with the protocol's rules.

The validation split is the dataset's own when it has one, else a stratified,
seeded share carved from train. Test and cross-domain sets never drive
checkpointing, early stopping or learning-rate decisions, unless the run is
explicitly ``paper_faithful`` (the paper's notebooks validated on their test folder).

Cross-validation (``folds``/``fold``) pools every image of the dataset, whatever
split it came in, and cuts ``folds`` stratified, seeded folds: fold ``fold`` is the
test split and a stratified ``val_fraction`` of *all* images is carved from the rest
as validation, so ``folds=10`` gives El Cheikh et al.'s 80/10/10. With ``cv_group`` (groups.py)
folds and carved validation splits keep every group (a CK+ subject) whole. With ``val_grouping``
content (the default of new runs) a validation split carved from train holds no exact or near
copy of a training image (duplicates.py): checkpoint selection must not reward memorising.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from fer_keras.config import DEFAULT_SEED, RunConfig
from fer_keras.data.duplicates import carve_unique, content_keys, copies_note, duplicate_groups, merge_groups
from fer_keras.data.groups import group_ids, grouped_carve, grouped_folds
from fer_keras.data.readers import DatasetError, ImageSet, read_dataset, reason_counts
from fer_keras.labels import CANONICAL_CLASSES, check_same_classes


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    val_source: str  # "dataset", "carved from train" or "test (paper_faithful)"

    def report_lines(self) -> list[str]:
        """What the console says about the data: the class count, absent classes, skipped files."""
        classes = self.train.class_names
        test = f" / {len(self.test)} test" if self.test is not None else ""
        lines = [f"data: {len(classes)} classes ({', '.join(classes)}); {len(self.train)} train / "
                 f"{len(self.val)} val{test} images; validation {self.val_source}"]
        missing = [c for c in CANONICAL_CLASSES if c not in classes]
        extra = [c for c in classes if c not in CANONICAL_CLASSES]  # contempt (CK+, AffectNet)
        if missing:
            count = f"{len(classes)} classes" + (f", not {len(CANONICAL_CLASSES)}"
                                                 if len(classes) != len(CANONICAL_CLASSES) else "")
            lines.append(f"warning: the training set has no {', '.join(missing)} images, so the model will have "
                         f"{count}" + (f", {', '.join(extra)} among them" if extra else ""))
        sets = {id(s): s for s in (self.train, self.val, self.test) if s is not None}
        skipped = [item for s in sets.values() for item in s.skipped]
        if skipped:
            lines.append(f"skipped {len(skipped)} files: {reason_counts(skipped)} (listed in data_summary.json)")
        return lines

    def summary(self) -> dict:
        out = {"classes": list(self.train.class_names), "val_source": self.val_source,
               "train": self.train.summary(), "val": self.val.summary()}
        if self.test is not None:
            out["test"] = self.test.summary()
        return out


def limit_per_class(images: ImageSet, limit: int | None, seed: int) -> ImageSet:
    """A seeded subsample of at most ``limit`` images per class (for quick runs)."""
    if not limit:
        return images
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(images.class_names)):
        idx = np.flatnonzero(images.labels == c)
        keep.append(rng.permutation(idx)[:limit])
    subset = images.subset(np.sort(np.concatenate(keep)), images.name)
    subset.skipped = images.skipped
    return subset


def pool(parts: dict[str, ImageSet], name: str) -> ImageSet:
    """Every image of every split in one set (the splits must share their classes)."""
    sets = [parts[k] for k in sorted(parts)]
    first = sets[0]
    for other in sets[1:]:
        check_same_classes(first.class_names, other.class_names, test_name=other.name)
    pixels = [s.pixels for s in sets]
    return ImageSet(
        name=name, class_names=first.class_names, labels=np.concatenate([s.labels for s in sets]),
        paths=sum((s.paths for s in sets), []),
        pixels=np.concatenate(pixels) if all(p is not None for p in pixels) else None,
        skipped=sum((s.skipped for s in sets), []),
        orientations=np.concatenate([s.orientation() for s in sets]),
    )


def fold_splits(images: ImageSet, folds: int, fold: int, *, val_fraction: float, seed: int,
                group: str | None = None) -> Splits:
    """Stratified k-fold: test is fold ``fold``; validation is carved from the other folds (both by whole
    groups when ``group`` is a cv_group pattern)."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold}")
    groups = group_ids(images.paths, group, where=images.name) if group else None
    try:
        if groups is None:
            kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            rest, test = list(kfold.split(np.zeros(len(images)), images.labels))[fold]
        else:
            rest, test = grouped_folds(images.labels, groups, folds, seed)[fold]
        share = min(val_fraction * len(images) / len(rest), 0.5)
        if groups is None:
            tr, va = train_test_split(rest, test_size=share, random_state=seed, stratify=images.labels[rest])
        else:
            tr, va = grouped_carve(rest, images.labels, groups, share, seed)
    except ValueError as err:
        raise DatasetError(f"cannot cut {folds} stratified folds from {images.name}: {err}") from None
    name = f"{images.name}[fold {fold}/{folds}]"
    train = images.subset(np.sort(tr), f"{name}[train]")
    train.skipped = images.skipped
    return Splits(train=train, val=images.subset(np.sort(va), f"{name}[val]"),
                  test=images.subset(np.sort(test), f"{name}[test]"),
                  val_source=f"fold {fold} of {folds} (stratified{_grouped(group)}, seed {seed}); "
                             f"val {val_fraction:.0%} of all")


def _grouped(group: str | None) -> str:
    return f", whole groups of cv_group {group!r}" if group else ""


def make_splits(path: Path, *, val_fraction: float = RunConfig.model_fields["val_fraction"].default,
                seed: int = DEFAULT_SEED, limit: int | None = None, paper_faithful: bool = False,
                folds: int | None = None, fold: int | None = None, group: str | None = None,
                val_grouping: str = "none") -> Splits:
    parts = read_dataset(path)
    if folds is not None:
        if paper_faithful:
            raise ValueError("cross-validation folds cannot be combined with paper_faithful")
        splits = fold_splits(pool(parts, Path(path).name), folds, fold or 0, val_fraction=val_fraction, seed=seed,
                             group=group)
        return _limited(splits, limit, seed)
    train = parts.get("train") or parts.get("all")
    if train is None:
        raise DatasetError(f"{path} has no train/ split (found: {', '.join(sorted(parts))})")
    for name in ("val", "test"):
        if name in parts:
            check_same_classes(train.class_names, parts[name].class_names, test_name=f"{path}/{name}")
    test = parts.get("test")
    if paper_faithful:
        if test is None:
            raise DatasetError(f"paper_faithful validates on the test split, but {path} has no test/ folder")
        val, source = test, "test (paper_faithful)"
    elif "val" in parts:
        val, source = parts["val"], "dataset"
    else:
        idx = np.arange(len(train))
        groups = group_ids(train.paths, group, where=str(path)) if group else None
        # Exact and near duplicates (duplicates.py) never straddle train and validation.
        copies = duplicate_groups(content_keys(train)) if val_grouping == "content" else None
        carved = (carve_unique(idx, train.labels, copies, val_fraction, seed)
                  if copies is not None and groups is None else None)
        groups = merge_groups(groups, copies) if groups is not None and copies is not None else groups
        try:
            if carved is not None:
                tr, va = carved
            elif groups is None:
                tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=train.labels)
            else:
                tr, va = grouped_carve(idx, train.labels, groups, val_fraction, seed)
        except ValueError as err:
            raise DatasetError(f"cannot carve a stratified validation split from {path}: {err}") from None
        skipped = train.skipped
        train, val = train.subset(np.sort(tr), f"{train.name}"), train.subset(np.sort(va), f"{train.name}[val]")
        train.skipped = skipped
        source = (f"carved from train ({val_fraction:.0%}, stratified{_grouped(group)}, seed {seed}"
                  f"{copies_note(copies, carved is not None or groups is not None)})")
    return _limited(Splits(train=train, val=val, test=test, val_source=source), limit, seed)


def _limited(splits: Splits, limit: int | None, seed: int) -> Splits:
    """A quick run's splits: at most ``limit`` train and validation images per class. Validation is
    limited too because it is evaluated every epoch; the test split is measured once and kept whole."""
    splits.train = limit_per_class(splits.train, limit, seed)
    splits.val = limit_per_class(splits.val, limit, seed)
    return splits


def splits_for(cfg: RunConfig) -> Splits:
    """The splits run ``cfg`` trains, is tested and is exported on.

    The one place a config becomes splits: training, evaluation and export all call it,
    so a cross-validation run is never checked or calibrated on another fold's images.
    """
    return make_splits(cfg.dataset_dir(), val_fraction=cfg.val_fraction, seed=cfg.seed,
                       limit=cfg.limit_per_class, paper_faithful=cfg.paper_faithful,
                       folds=cfg.folds, fold=cfg.fold, group=cfg.cv_group, val_grouping=cfg.val_grouping)
