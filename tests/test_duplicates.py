"""Duplicates between sets (issue 24): content keys, their cache, the chunked search, the carved validation split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml
from PIL import Image
from sklearn.model_selection import train_test_split

from fer_keras.data import duplicates
from fer_keras.data.readers import ImageSet, read_class_folders
from fer_keras.data.splits import make_splits
from fer_keras.runs import Run

CLASSES = ("angry", "happy", "sad")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(duplicates.CACHE_ENV, str(tmp_path / "cache"))


def face(seed: int) -> np.ndarray:
    """A smooth 48x48 grey picture (low frequencies, like a face): distinct seeds give distant hashes."""
    small = np.random.default_rng(seed).integers(0, 256, (6, 6)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((48, 48), Image.BILINEAR))


def near_copy(pixels: np.ndarray) -> Image.Image:
    """The same picture a little brighter: other bytes, nearly the same perceptual hash."""
    return Image.fromarray(np.clip(pixels.astype(int) + 4, 0, 255).astype(np.uint8))


def image_set(paths: list, labels: list[int]) -> ImageSet:
    return ImageSet("s", CLASSES, np.array(labels, np.int32), [str(p) for p in paths])


def write(path, img) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(path)
    return str(path)


def brute_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([[bin(int(x) ^ int(y)).count("1") for y in b] for x in a])


def test_chunked_search_equals_brute_force(monkeypatch):
    monkeypatch.setattr(duplicates, "CHUNK_ELEMENTS", 50)  # many chunks, and chunk edges inside the data
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 2**63, 120, dtype=np.uint64)
    query = rng.integers(0, 2**63, 70, dtype=np.uint64)
    query[:20] = ref[rng.integers(0, 120, 20)] ^ np.uint64(0b1011)  # 3 bits from a reference hash
    dist = brute_distance(query, ref)
    assert (duplicates.nearest_distance(query, ref) == dist.min(axis=1)).all()
    both = np.concatenate([ref, query])
    full = brute_distance(both, both)
    want = {(i, j) for i, j in zip(*np.nonzero(full <= 6), strict=True) if i < j}
    assert {tuple(p) for p in duplicates.near_pairs(both, 6).tolist()} == want
    assert len(want) >= 20


def test_search_of_packed_bit_rows_any_hash_length(monkeypatch):
    """data_prep.dedupe's hashes of any size, packed to uint64 words, go through the same search: distances add up
    across words, a pair exactly at the threshold is kept and one a bit past it dropped."""
    monkeypatch.setattr(duplicates, "CHUNK_ELEMENTS", 12)  # chunks of one or two rows
    for nbits in (16, 64, 256):
        flips = [[], [0, 1, 2], [0, 1, 2, -3, -2, -1], [0, 1, 2, -4, -3, -2, -1], list(range(nbits)), []]
        bits = np.zeros((len(flips), nbits), bool)
        for row, f in zip(bits, flips, strict=True):
            row[f] = True
        packed = duplicates.pack_bits(bits)
        assert packed.shape == (6, -(-nbits // 64)) and packed.dtype == np.uint64
        # distances: 0-1 3, 0-2 6 (at the threshold, 3 + 3 in two words when 256 bits), 0-3 7, 0-5 0, 1-2 3,
        # 1-3 4, 1-5 3, 2-3 1, 2-5 6, 3-5 7; row 4 (all bits) is at least nbits - 7 from every other
        want = {(0, 1), (0, 2), (0, 5), (1, 2), (1, 3), (1, 5), (2, 3), (2, 5)}
        assert {tuple(p) for p in duplicates.near_pairs(packed, 6).tolist()} == want
        assert {tuple(p) for p in duplicates.near_pairs(packed, 5).tolist()} == want - {(0, 2), (2, 5)}
        if nbits == 64:  # the one-word form is the library's own uint64 phash
            assert (duplicates.near_pairs(packed[:, 0], 6) == duplicates.near_pairs(packed, 6)).all()


def test_kinds_exact_near_and_unique(tmp_path):
    pics = [face(i) for i in range(6)]
    train = image_set([write(tmp_path / "train" / f"{i}.png", p) for i, p in enumerate(pics)], [0, 1, 2, 0, 1, 2])
    test_files = [write(tmp_path / "test" / "copy.png", pics[0]),  # same bytes
                  write(tmp_path / "test" / "near.png", near_copy(pics[1])),
                  write(tmp_path / "test" / "other.png", face(100))]
    assert (tmp_path / "test" / "copy.png").read_bytes() == (tmp_path / "train" / "0.png").read_bytes()
    kinds, cache = duplicates.duplicates_in(train, image_set(test_files, [0, 1, 2]))
    assert kinds.tolist() == ["exact", "near", ""]
    assert cache.is_file()
    assert duplicates.summary(kinds) == {"images": 3, "exact": 1, "near": 1, "unique": 1,
                                         "hash": duplicates.HASH_NAME, "threshold": duplicates.NEAR_THRESHOLD}


def test_a_copy_stored_sideways_is_a_copy(tmp_path):
    """Keys hash a picture upright, as the pipeline shows it to a model: a copy stored turned, with an EXIF
    orientation, is a near copy; the orientation is part of the cache key (keys cached before it counted)."""
    pic = face(1)
    train = image_set([write(tmp_path / "train" / "a.png", pic)], [0])
    exif = Image.Exif()
    exif[0x0112] = 6  # ROTATE_270 turns the stored pixels upright
    (tmp_path / "test" / "happy").mkdir(parents=True)
    Image.fromarray(np.rot90(pic)).save(tmp_path / "test" / "happy" / "turned.png", exif=exif)
    test = read_class_folders(tmp_path / "test")
    assert test.orientations.tolist() == [6]
    assert duplicates.duplicates_in(train, test)[0].tolist() == ["near"]
    assert duplicates.set_digest(test)[0] != duplicates.set_digest(dataclasses.replace(test, orientations=None))[0]


def test_keys_are_cached_by_file_list_in_any_order(tmp_path, monkeypatch):
    files = [write(tmp_path / f"{i}.png", face(i)) for i in range(4)]
    keys = duplicates.content_keys(image_set(files, [0, 1, 2, 0]))

    def fail(*_args):
        raise AssertionError("hashed again")

    monkeypatch.setattr(duplicates, "_compute", fail)
    again = duplicates.content_keys(image_set(files[::-1], [0, 2, 1, 0]))  # another order: same cache entry
    assert (again.sha == keys.sha[::-1]).all() and (again.phash == keys.phash[::-1]).all()
    write(tmp_path / "0.png", face(50))  # a changed file is a new file list
    with pytest.raises(AssertionError, match="hashed again"):
        duplicates.content_keys(image_set(files, [0, 1, 2, 0]))


def test_groups_link_chains_and_merge():
    keys = duplicates.ContentKeys(np.array([b"a", b"b", b"a", b"c", b"d"], "S32"),
                                  np.array([0, 0b1, 0xFFFF << 20, 0b11, 0xFFFF << 40], np.uint64))
    # 0~1 (1 bit), 1~3 (1 bit), 0==2 (same bytes); 4 alone; ids by first image
    assert duplicates.duplicate_groups(keys, 1).tolist() == [0, 0, 0, 0, 1]
    assert duplicates.duplicate_groups(keys, -1).tolist() == [0, 1, 0, 2, 3]  # exact only
    assert duplicates.merge_groups(np.array(["x", "y", "y", "z"]), np.array([0, 1, 2, 0])).tolist() == [0, 1, 1, 0]


def test_carve_without_duplicates_is_the_plain_split():
    labels = np.repeat(np.arange(3), 40)
    idx = np.arange(len(labels))
    tr, va = duplicates.carve_unique(idx, labels, idx.copy(), 0.1, 7)
    plain_tr, plain_va = train_test_split(idx, test_size=0.1, random_state=7, stratify=labels)
    assert (va == np.sort(plain_va)).all() and (tr == np.sort(plain_tr)).all()


def test_carve_keeps_every_duplicate_group_in_train():
    labels = np.repeat(np.arange(3), 100)
    groups = np.arange(300)
    groups[100:160] = 100  # a chain of 60 similar faces: must not fall into validation
    groups[[5, 6]] = 5
    tr, va = duplicates.carve_unique(np.arange(300), labels, groups, 0.1, 0)
    assert len(va) == 30 and not set(va) & {5, 6, *range(100, 160)}
    assert sorted([*tr, *va]) == list(range(300))
    assert duplicates.carve_unique(np.arange(300), labels, np.zeros(300, int), 0.1, 0) is None  # nothing unique


def _folder_dataset(root, per_class: int = 30, copies: int = 8) -> None:
    seed = 0
    for c, cls in enumerate(CLASSES):
        for i in range(per_class):
            seed += 1
            write(root / "train" / cls / f"{i}.png", face(seed))
        for i in range(copies):  # exact and near copies of this class's first images
            src = np.asarray(Image.open(root / "train" / cls / f"{i}.png"))
            write(root / "train" / cls / f"dup{i}.png", near_copy(src) if i % 2 else src)
        write(root / "test" / cls / "t.png", face(1000 + c))


def test_content_carved_validation_has_no_copy_of_a_training_image(tmp_path):
    _folder_dataset(tmp_path / "d")

    def dups(s):
        return duplicates.summary(duplicates.duplicate_kinds(duplicates.content_keys(s.train),
                                                             duplicates.content_keys(s.val)))

    found = [dups(make_splits(tmp_path / "d", val_fraction=0.2, seed=seed)) for seed in range(4)]
    assert sum(f["exact"] + f["near"] for f in found) > 0  # the plain split does carve copies out of train
    for seed in range(4):
        split = make_splits(tmp_path / "d", val_fraction=0.2, seed=seed, val_grouping="content")
        assert dups(split)["exact"] + dups(split)["near"] == 0
        assert len(split.val) == len(make_splits(tmp_path / "d", val_fraction=0.2, seed=seed).val)
        assert "the 48 images with an exact or near copy in train stay in train" in split.val_source
    # Over half of the unique images would be needed: a plain split, and the console says so.
    assert "WARNING" in make_splits(tmp_path / "d", val_fraction=0.3, val_grouping="content").val_source


def test_runs_saved_before_val_grouping_keep_their_plain_split(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "lenet5", "dataset": "demo"}))
    assert Run(tmp_path).config().val_grouping == "none"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "lenet5", "val_grouping": "content"}))
    assert Run(tmp_path).config().val_grouping == "content"
