"""Exact and near duplicates on generated images with known edits."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep import dedupe
from fer_keras.data.exclusions import read_exclusions


def texture(seed: int, size: int = 256) -> np.ndarray:
    """Smooth random grayscale texture: face-like detail, unrelated across seeds."""
    small = np.random.default_rng(seed).random((12, 12))
    a = (cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255)
    return np.repeat(a.astype(np.uint8)[..., None], 3, -1)


def put(root, rel, a, **kw):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **kw)


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    a, b, c = texture(1), texture(2), texture(3)
    put(root, "train/happy/a.png", a)
    shutil.copyfile(root / "train/happy/a.png", root / "train/happy/a_copy.png")  # exact
    put(root, "train/fear/b.png", b)
    shifted = np.pad(b, ((2, 0), (2, 0), (0, 0)), mode="edge")[:256, :256]
    put(root, "test/fear/b_shift.png", shifted)                                    # leak
    put(root, "train/sad/c.png", c)
    bright = np.clip(c.astype(int) * 1.15 + 10, 0, 255).astype(np.uint8)
    put(root, "train/angry/c_bright.png", bright)                                  # conflict
    put(root, "val/sad/c.jpg", c, quality=60)                                      # re-encode
    for i in range(12):
        split, cls = ("train", "test")[i % 2], ("happy", "sad", "neutral")[i % 3]
        put(root, f"{split}/{cls}/other{i}.png", texture(100 + i))
    return root


def test_finds_exact_and_near_not_unrelated(dataset, tmp_path):
    s = dedupe.run(dataset, tmp_path / "report", progress=False)
    rep = pd.read_csv(tmp_path / "report" / "duplicates.csv")
    assert not rep["path"].str.contains("other").any()
    groups = sorted(sorted(g) for g in rep.groupby("cluster")["path"].apply(list))
    assert groups == [
        ["test/fear/b_shift.png", "train/fear/b.png"],
        ["train/angry/c_bright.png", "train/sad/c.png", "val/sad/c.jpg"],
        ["train/happy/a.png", "train/happy/a_copy.png"],
    ]
    assert (s["clusters"], s["exact_clusters"], s["near_clusters"]) == (3, 1, 2)
    assert (s["exact_duplicates"], s["near_duplicates"], s["redundant_images"]) == (1, 3, 4)
    assert (s["train_test_leak_clusters"], s["test_images_with_train_duplicate"]) == (1, 1)
    assert (s["label_conflict_clusters"], s["cross_split_clusters"]) == (1, 2)
    keep = set(rep[rep["keep"]]["path"])
    # Keeper rule: test before val before train, then larger, then first path.
    assert keep == {"test/fear/b_shift.png", "val/sad/c.jpg", "train/happy/a.png"}
    assert rep.loc[rep["label_conflict"], "cluster"].iloc[0] == 1  # conflicts listed first
    assert len(list((tmp_path / "report" / "sheets").glob("cluster_*.png"))) == 3
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["would_remove"] == 2


def test_nothing_changes_unless_asked_then_exclude(dataset, tmp_path):
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    dedupe.run(dataset, tmp_path / "r1", progress=False)
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before
    dedupe.run(dataset, tmp_path / "r2", exclude=True, progress=False)
    assert {p.as_posix() for p in read_exclusions(dataset)} == {
        "train/happy/a_copy.png", "train/fear/b.png"}
    s = dedupe.run(dataset, tmp_path / "r3", progress=False)  # honours exclude.txt
    assert (s["clusters"], s["label_conflict_clusters"]) == (1, 1)


def test_move_to_with_conflicts_dropped(dataset, tmp_path):
    dedupe.run(dataset, tmp_path / "r", move_to=tmp_path / "moved", conflicts="drop",
               progress=False)
    moved = sorted(p.relative_to(tmp_path / "moved").as_posix()
                   for p in (tmp_path / "moved").rglob("*.*"))
    assert moved == ["train/angry/c_bright.png", "train/fear/b.png", "train/happy/a_copy.png",
                     "train/sad/c.png", "val/sad/c.jpg"]
    assert (dataset / "test/fear/b_shift.png").exists()
    with pytest.raises(ValueError, match="outside the dataset"):
        dedupe.run(dataset, tmp_path / "r", move_to=dataset / "dups", progress=False)


def test_unreadable_images_are_listed_not_fatal(dataset, tmp_path):
    (dataset / "train/happy/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    s = dedupe.run(dataset, tmp_path / "r", progress=False)
    assert s["unreadable"] == ["train/happy/broken.jpg"] and s["clusters"] == 3


def test_threshold_zero_and_exact_only(dataset, tmp_path):
    s = dedupe.run(dataset, tmp_path / "r", threshold=-1, progress=False)
    assert (s["clusters"], s["exact_duplicates"], s["near_duplicates"]) == (1, 1, 0)

