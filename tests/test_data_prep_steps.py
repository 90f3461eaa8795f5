"""balance, review and anonymize on small generated datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep import anonymize, balance, review
from fer_keras.data.exclusions import read_exclusions


def make_dataset(root, counts, split="train"):
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        d = root / split / cls if split else root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = rng.integers(0, 255, (16, 16, 3), np.uint8)
            Image.fromarray(a).save(d / f"{cls}{i:03d}.png")
    return root


def names(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def test_balance_counts_seed_and_exclusions(tmp_path):
    src = make_dataset(tmp_path / "src", {"happy": 30, "sad": 12, "angry": 20})
    (src / "exclude.txt").write_text("train/sad/sad000.png\n")
    m = balance.balance(src, tmp_path / "a", per_class=10, seed=3, split="train",
                        dst_split="test")
    assert m.groupby("class").size().to_dict() == {"angry": 10, "happy": 10, "sad": 10}
    assert len(list((tmp_path / "a" / "test" / "happy").glob("*.png"))) == 10
    assert "train/sad/sad000.png" not in set(m["source"])
    again = balance.balance(src, tmp_path / "b", per_class=10, seed=3, split="train",
                            dst_split="test")
    other = balance.balance(src, tmp_path / "c", per_class=10, seed=4, split="train",
                            dst_split="test")
    assert list(again["source"]) == list(m["source"])
    assert list(other["source"]) != list(m["source"])
    assert (tmp_path / "a" / balance.MANIFEST).is_file()
    with pytest.raises(ValueError, match="fewer than 12.*'sad': 11"):
        balance.balance(src, tmp_path / "d", per_class=12)
    m = balance.balance(src, tmp_path / "e", per_class=12, allow_fewer=True)
    assert m.groupby("class").size().to_dict() == {"angry": 12, "happy": 12, "sad": 11}
    with pytest.raises(FileExistsError, match="not empty"):
        balance.balance(src, tmp_path / "a", per_class=5)


def test_review_sheets_and_exclude_by_cell(tmp_path):
    root = make_dataset(tmp_path / "d", {"fear": 7, "neutral": 3})
    idx = review.make_sheets(root, tmp_path / "rev", per_sheet=5, cols=5)
    assert sorted(idx["sheet"].unique()) == ["train_fear_p001", "train_fear_p002",
                                            "train_neutral_p001"]
    assert (tmp_path / "rev" / "train_fear_p002.png").is_file()
    assert review.parse_cells("train_fear_p001:1,3-4") == ("train_fear_p001", [1, 3, 4])
    review.main(["exclude", "--root", str(root), "--index", str(tmp_path / "rev" / "index.csv"),
                 "--cells", "train_fear_p001:2,4-5", "--reason", "drawings"])
    assert {p.as_posix() for p in read_exclusions(root)} == {
        "train/fear/fear001.png", "train/fear/fear003.png", "train/fear/fear004.png"}
    assert "drawings" in (root / "exclude.txt").read_text()
    idx = review.make_sheets(root, tmp_path / "rev2", per_sheet=5)
    assert len(idx) == 7  # excluded images are not shown again
    with pytest.raises(ValueError, match="no cell"):
        review.cells_to_paths(idx, ["train_fear_p001:9"])
    review.main(["include", "--root", str(root), "--paths", "train/fear/fear001.png"])
    assert len(read_exclusions(root)) == 2


def test_anonymize_hash_names_private_mapping(tmp_path):
    src = make_dataset(tmp_path / "raw", {"happy": 3}, split="")
    (src / "happy" / "john_doe_selfie.png").write_bytes((src / "happy" / "happy000.png")
                                                       .read_bytes())
    before = names(src)
    anonymize.anonymize(src, tmp_path / "out", tmp_path / "private" / "map.csv")
    assert names(src) == before
    out = names(tmp_path / "out")
    assert len(out) == 3 and not any("john" in n or "happy0" in n for n in out)
    assert all(len(n.split("/")[1]) == 20 + 4 for n in out)
    m = pd.read_csv(tmp_path / "private" / "map.csv")
    assert int(m["duplicate_of_earlier"].sum()) == 1 and len(m) == 4
    with pytest.raises(ValueError, match="must not be inside"):
        anonymize.anonymize(src, tmp_path / "o2", tmp_path / "o2" / "map.csv")
