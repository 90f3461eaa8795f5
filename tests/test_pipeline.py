import numpy as np
import pytest
import tensorflow as tf
from conftest import make_folder_dataset, write_image

from fer_keras.data.augment import augment_batch
from fer_keras.data.demo import ensure_demo
from fer_keras.data.legacy import make_legacy_dataset
from fer_keras.data.pipeline import make_dataset
from fer_keras.data.readers import read_class_folders, read_fer2013_csv


@pytest.fixture
def folder(tmp_path):
    make_folder_dataset(tmp_path, {"happy": 5, "sad": 4}, size=20)
    write_image(tmp_path / "sad" / "colour.jpg", seed=9, size=30, mode="RGB")
    return read_class_folders(tmp_path)


def _collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_eval_pipeline_yields_every_image_once_in_order(folder):
    x, y = _collect(make_dataset(folder, 32, batch=4, training=False))  # 10 images: last batch partial
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32
    assert y.argmax(1).tolist() == folder.labels.tolist()
    assert 0 <= x.min() and x.max() <= 255 and x.max() > 1  # raw 0-255: models normalise
    gray = x[0]
    assert np.allclose(gray[..., 0], gray[..., 1]) and np.allclose(gray[..., 1], gray[..., 2])


def test_training_pipeline_shuffles_and_augments(folder):
    x, y = _collect(make_dataset(folder, 32, batch=4, training=True, seed=1))
    plain, _ = _collect(make_dataset(folder, 32, batch=4, training=False))
    assert x.shape == plain.shape and sorted(y.argmax(1)) == sorted(folder.labels)
    assert not np.allclose(np.sort(x.reshape(10, -1).sum(1)), np.sort(plain.reshape(10, -1).sum(1)))


def test_augmentation_identity_geometry_and_range():
    img = tf.random.uniform((6, 24, 24, 3), 0, 255, seed=0)
    out = augment_batch(img, seed=3)
    assert out.shape == img.shape
    assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255.0


def test_legacy_pipeline_matches_shapes_and_order(folder):
    x, y = _collect(make_legacy_dataset(folder, 32, batch=4, training=False))
    assert x.shape == (10, 32, 32, 3) and y.argmax(1).tolist() == folder.labels.tolist()
    xt, yt = _collect(make_legacy_dataset(folder, 32, batch=4, training=True, seed=2))
    assert xt.shape == x.shape and sorted(yt.argmax(1)) == sorted(folder.labels)


def test_csv_pixels_become_rgb(tmp_path):
    rows = [f"{c},{' '.join(map(str, np.random.default_rng(c).integers(0, 256, 64)))},Training" for c in (0, 3, 3)]
    (tmp_path / "f.csv").write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    train = read_fer2013_csv(tmp_path / "f.csv")["train"]
    x, _ = _collect(make_dataset(train, 16, batch=2, training=False))
    assert x.shape == (3, 16, 16, 3)


def test_demo_is_deterministic_and_says_it_is_synthetic(tmp_path):
    a, wild = ensure_demo(tmp_path / "a")
    b, _ = ensure_demo(tmp_path / "b")
    fa, fb = a / "train" / "happy" / "happy_0003.png", b / "train" / "happy" / "happy_0003.png"
    assert fa.read_bytes() == fb.read_bytes()
    assert "SYNTHETIC" in (a / "README.txt").read_text()
    counts = read_class_folders(wild).counts()
    assert len(set(counts.values())) == 1  # the wild domain is balanced
    assert read_class_folders(a / "train").counts()["disgust"] < read_class_folders(a / "train").counts()["happy"]
