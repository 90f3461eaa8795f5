import numpy as np
import pytest
from conftest import make_folder_dataset, write_image

from fer_keras.data.readers import DatasetError, read_class_folders, read_dataset, read_fer2013_csv
from fer_keras.data.splits import make_splits
from fer_keras.labels import UnknownClassError


def test_alias_folders_read_in_canonical_order(tmp_path):
    make_folder_dataset(tmp_path, {"Surprised": 2, "happiness": 3, "Angry": 1})
    s = read_class_folders(tmp_path)
    assert s.class_names == ("angry", "happy", "surprise")
    assert s.counts() == {"angry": 1, "happy": 3, "surprise": 2}


def test_bad_files_are_skipped_counted_and_listed(tmp_path):
    make_folder_dataset(tmp_path, {"happy": 2, "sad": 2})
    (tmp_path / "happy" / "empty.jpg").write_bytes(b"")
    (tmp_path / "happy" / "text.png").write_text("not an image at all")
    good = (tmp_path / "sad" / "0.png").read_bytes()
    (tmp_path / "sad" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "sad" / "notes.txt").write_text("hello")
    from PIL import Image

    Image.new("L", (24, 24), 128).save(tmp_path / "sad" / "blank.png")
    s = read_class_folders(tmp_path)
    assert len(s) == 4
    reasons = {p.split("/")[-1]: r for p, r in s.skipped}
    assert set(reasons) == {"empty.jpg", "text.png", "truncated.png", "notes.txt", "blank.png"}
    assert "0 bytes" in reasons["empty.jpg"] and "blank" in reasons["blank.png"]
    assert "truncated" in reasons["truncated.png"] and "not an image" in reasons["text.png"]
    assert s.summary()["skipped"] == 5


def test_unknown_folder_name_and_empty_class_folder(tmp_path):
    make_folder_dataset(tmp_path / "a", {"happy": 1, "sadd": 1})
    with pytest.raises(UnknownClassError, match="sadd.*Did you mean 'sad'"):
        read_class_folders(tmp_path / "a")
    make_folder_dataset(tmp_path / "b", {"happy": 1})
    (tmp_path / "b" / "sad").mkdir()
    with pytest.raises(DatasetError, match=r"b/sad is empty"):
        read_class_folders(tmp_path / "b")
    with pytest.raises(DatasetError, match="does not exist"):
        read_class_folders(tmp_path / "missing")


def test_exclusion_list_is_honoured(tmp_path):
    make_folder_dataset(tmp_path / "train", {"happy": 3, "sad": 2})
    (tmp_path / "exclude.txt").write_text("# reviewed\ntrain/happy/1.png\n")
    s = read_dataset(tmp_path)["train"]
    assert s.counts() == {"happy": 2, "sad": 2}
    assert not any(p.endswith("happy/1.png") for p in s.paths)


def test_test_split_with_other_classes_fails_before_any_work(tmp_path):
    make_folder_dataset(tmp_path / "train", {"happy": 3, "sad": 3})
    make_folder_dataset(tmp_path / "test", {"happy": 1, "angry": 1})
    with pytest.raises(ValueError, match=r"missing in .*test: \['sad'\].*extra in .*test: \['angry'\]"):
        make_splits(tmp_path)


def test_validation_split_is_stratified_and_seeded(tmp_path):
    make_folder_dataset(tmp_path / "train", {"happy": 20, "sad": 10})
    a = make_splits(tmp_path, val_fraction=0.2, seed=1)
    b = make_splits(tmp_path, val_fraction=0.2, seed=1)
    assert a.val.counts() == {"happy": 4, "sad": 2}
    assert a.val.paths == b.val.paths and not set(a.val.paths) & set(a.train.paths)
    assert "carved" in a.val_source
    limited = make_splits(tmp_path, val_fraction=0.2, seed=1, limit=5)
    assert limited.train.counts() == {"happy": 5, "sad": 5}
    # A quick run validates on a quick share too: the limit caps the validation split as well.
    tiny = make_splits(tmp_path, val_fraction=0.2, seed=1, limit=2)
    assert tiny.val.counts() == {"happy": 2, "sad": 2} and set(tiny.val.paths) <= set(a.val.paths)


def _csv(path, rows, header="emotion,pixels,Usage"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _row(code, usage, seed=0):
    px = np.random.default_rng(seed).integers(0, 256, 16 * 16)  # 16 px: the smallest face a reader keeps
    return f"{code},{' '.join(map(str, px))},{usage}"


def test_fer2013_csv_maps_codes_and_usage(tmp_path):
    rows = [_row(3, "Training", 1), _row(6, "Training", 2), _row(0, "Training", 3), _row(3, "PublicTest", 4),
            _row(6, "PublicTest", 5), _row(0, "PublicTest", 6), _row(3, "PrivateTest", 7)]
    out = read_fer2013_csv(_csv(tmp_path / "fer.csv", rows))
    assert out["train"].class_names == ("angry", "happy", "neutral")
    assert out["train"].pixels.shape == (3, 16, 16)
    assert sorted(out) == ["test", "train", "val"]


def test_fer2013_csv_errors_name_the_row(tmp_path):
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['emotion'\]"):
        read_fer2013_csv(_csv(tmp_path / "h.csv", [_row(0, "Training")], header="label,pixels,Usage"))
    with pytest.raises(DatasetError, match=r"row 1 \(line 3\): 3 pixel values, expected 256"):
        read_fer2013_csv(_csv(tmp_path / "p.csv", [_row(0, "Training"), "1,1 2 3,Training"]))
    with pytest.raises(DatasetError, match=r"row 0 \(line 2\): 3 pixel values do not form a square"):
        read_fer2013_csv(_csv(tmp_path / "q.csv", ["1,1 2 3,Training"]))
    with pytest.raises(DatasetError, match=r"row 0 \(line 2\): unknown emotion code '9'"):
        read_fer2013_csv(_csv(tmp_path / "c.csv", [_row(9, "Training")]))


def test_grayscale_and_rgb_files_mix(tmp_path):
    write_image(tmp_path / "happy" / "g.png", 1, mode="L")
    write_image(tmp_path / "happy" / "c.jpg", 2, mode="RGB")
    write_image(tmp_path / "sad" / "c.png", 3, mode="RGB")
    assert len(read_class_folders(tmp_path)) == 3
