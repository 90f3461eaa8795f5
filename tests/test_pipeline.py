import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_folder_dataset, write_image

from fer_keras.data.augment import augment_batch
from fer_keras.data.demo import ensure_demo
from fer_keras.data.images import open_rgb
from fer_keras.data.legacy import make_legacy_dataset
from fer_keras.data.pipeline import TrainingData, decode_bytes, epoch_order, make_dataset
from fer_keras.data.readers import ImageSet, read_class_folders, read_fer2013_csv


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


def test_augmentation_moves_every_image_keeps_its_shape_and_range_and_fills_from_the_edge():
    """Not a no-op: each image changes; bilinear resampling stays within the input's range; nearest-edge
    fill (not black) keeps a constant image constant; the same key gives the same batch."""
    img = tf.random.uniform((6, 24, 24, 3), 10, 250, seed=0)
    key = tf.constant([3, 0], tf.int64)
    out = augment_batch(img, key).numpy()
    assert out.shape == img.shape
    assert all(np.abs(out[i] - img[i].numpy()).mean() > 5 for i in range(6)), "every image is transformed"
    assert out.min() >= float(tf.reduce_min(img)) - 1e-3 and out.max() <= float(tf.reduce_max(img)) + 1e-3
    assert np.array_equal(out, augment_batch(img, key).numpy())
    assert not np.array_equal(out, augment_batch(img, tf.constant([4, 0], tf.int64)).numpy())
    flat = augment_batch(tf.fill((6, 24, 24, 3), 200.0), key).numpy()
    assert np.abs(flat - 200).max() < 1e-3


def test_legacy_pipeline_matches_shapes_and_order(folder):
    x, y = _collect(make_legacy_dataset(folder, 32, batch=4, training=False))
    assert x.shape == (10, 32, 32, 3) and y.argmax(1).tolist() == folder.labels.tolist()
    xt, yt = _collect(make_legacy_dataset(folder, 32, batch=4, training=True, seed=2))
    assert xt.shape == x.shape and sorted(yt.argmax(1)) == sorted(folder.labels)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_training_decodes_jpegs_as_the_predictor_does(tmp_path, mode):
    """Training and evaluation decode a JPEG to the pixels PIL gives the predictor: TensorFlow's default
    fast IDCT is 0.4-0.9 grey levels off on average for these images, the accurate one matches PIL."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.clip(np.cumsum(rng.normal(0, 20, (48, 48, 3)), axis=0), 0, 255).astype(np.uint8)
    path = tmp_path / "face.jpg"
    Image.fromarray(pixels if mode == "RGB" else pixels[..., 0]).save(path, quality=75)
    ours = decode_bytes(tf.io.read_file(str(path))).numpy().astype(int)
    theirs = np.asarray(open_rgb(path)).astype(int)
    assert ours.shape == theirs.shape == (48, 48, 3)
    assert np.abs(ours - theirs).max() <= 1 and np.abs(ours - theirs).mean() < 0.1


def turned_photos(folder: Path, suffix: str) -> list[Path]:
    """One 24 x 18 picture (no symmetry: each orientation shows it differently) stored with each EXIF
    orientation 1..8, as phones store photos: pixels as the sensor read them, the tag says how to turn them."""
    from PIL import Image

    rgb = np.random.default_rng(7).integers(0, 256, (18, 24, 3), np.uint8)
    rgb = np.asarray(Image.fromarray(rgb).resize((6, 4)).resize((24, 18), Image.BILINEAR))  # smooth: JPEG-friendly
    folder.mkdir(parents=True)
    paths = []
    for k in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = k
        Image.fromarray(rgb).save(folder / f"o{k}{suffix}", exif=exif, **({"quality": 95} if suffix == ".jpg" else {}))
        paths.append(folder / f"o{k}{suffix}")
    return paths


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_training_and_evaluation_turn_phone_photos_upright_as_the_predictor_does(tmp_path, suffix):
    """A photo stored sideways with an EXIF orientation reaches the model upright, as ``open_rgb`` gives it to
    the predictor: in evaluation, the cached and the uncached training stream and the legacy pipeline."""
    from PIL import Image

    from fer_keras.data.pipeline import _to_uint8

    paths = turned_photos(tmp_path / "happy", suffix)
    images = read_class_folders(tmp_path)
    assert images.paths == [str(p) for p in paths] and images.orientations.tolist() == list(range(1, 9))
    assert images.subset(np.array([7, 0]), "s").orientations.tolist() == [8, 1]
    res = 20
    upright = [np.asarray(open_rgb(p)) for p in paths]
    assert [u.shape[:2] for u in upright] == [(18, 24)] * 4 + [(24, 18)] * 4
    want = np.stack([_to_uint8(tf.image.resize(u.astype(np.float32), (res, res), antialias=True)).numpy()
                     for u in upright]).astype(int)  # as Predictor.model_input resizes
    assert len({w.tobytes() for w in want}) == 8  # every orientation looks different

    def close(x: np.ndarray, expected: np.ndarray = want) -> bool:
        diff = np.abs(x.astype(int) - expected)
        return diff.max() == 0 if suffix == ".png" else diff.max() <= 2 and diff.mean() < 0.2

    evaluated, labels = _collect(make_dataset(images, res, batch=3, training=False))
    assert close(evaluated) and labels.shape == (8, 1)
    order = epoch_order(images.labels, 1, 0)
    for cache in (True, False):
        stream = np.concatenate([x.numpy() for x, _ in TrainingData(images, res, 3, seed=1, cache=cache,
                                                                    augment=False).epochs()])
        assert close(stream, want[order]), cache
    legacy, _ = _collect(make_legacy_dataset(images, res, batch=3, training=False))
    nearest = np.stack([np.asarray(Image.fromarray(u).resize((res, res), Image.NEAREST)) for u in upright])
    assert close(legacy, nearest.astype(int))


def test_a_damaged_exif_block_reads_as_upright_in_the_reader_and_the_predictor(tmp_path):
    """Pillow cannot parse a 5-byte EXIF payload (it raised struct.error through the whole dataset read): the
    pixels are fine, so the file is trained on as stored, and the predictor sees the same pixels."""
    from PIL import Image

    from fer_keras.data.readers import inspect_image

    rgb = np.random.default_rng(3).integers(0, 256, (18, 24, 3), np.uint8)
    path = tmp_path / "happy" / "damaged.png"
    path.parent.mkdir()
    Image.fromarray(rgb).save(path, exif=b"MM\x00*\x00")
    assert inspect_image(path) == (None, 1)
    assert np.array_equal(np.asarray(open_rgb(path)), rgb)
    assert read_class_folders(tmp_path).orientations.tolist() == [1]
    from fer_keras.data.duplicates import _file_keys

    # The near-copy hash (it raised too) reads the pixels as stored: the same phash as a copy without EXIF.
    clean = tmp_path / "clean.png"
    Image.fromarray(rgb).save(clean)
    assert _file_keys(str(path))[1] == _file_keys(str(clean))[1]


def test_csv_pixels_become_rgb(tmp_path):
    rows = [f"{c},{' '.join(map(str, np.random.default_rng(c).integers(0, 256, 256)))},Training" for c in (0, 3, 3)]
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


# --- Training order: uniform permutations, no shuffle buffer --------------------------------------------

SORTED_COUNTS = (6000, 4000, 2000)  # class-sorted, larger than the old 10,000-image shuffle buffer


def _sorted_set() -> ImageSet:
    """12,000 class-sorted 4x4 images; image i is one flat colour whose red and green encode i."""
    n = sum(SORTED_COUNTS)
    ids = np.arange(n)
    pixels = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1] = (ids % 256)[:, None, None], (ids // 256)[:, None, None]
    labels = np.repeat(np.arange(len(SORTED_COUNTS)), SORTED_COUNTS)
    return ImageSet("sorted", ("a", "b", "c"), labels, pixels=pixels)


def _within(counts: np.ndarray, expected: np.ndarray, sd: np.ndarray) -> bool:
    # Six standard deviations: a chance failure is below 1e-8 per class and batch, whatever the seed.
    return bool(np.all(np.abs(counts - expected) <= 6 * sd))


def test_every_epoch_is_a_uniform_permutation_from_the_first_batch_on():
    images, batch = _sorted_set(), 500
    n, p = len(images), np.array(SORTED_COUNTS) / len(images)
    # Hypergeometric: a batch drawn without replacement from the whole split.
    sd = np.sqrt(batch * p * (1 - p) * (n - batch) / (n - 1))
    data = TrainingData(images, 4, batch, seed=5, augment=False)
    assert data.steps_per_epoch == 24
    epochs = []
    for x, y in data.epochs(0, 2):
        x = x.numpy().astype(np.int64)
        assert (x == x[:, :1, :1]).all()  # flat colours come back exactly
        ids = x[:, 0, 0, 0] + 256 * x[:, 0, 0, 1]
        assert (images.labels[ids] == y.numpy().argmax(1)).all()
        counts = np.bincount(images.labels[ids], minlength=3)
        assert len(ids) == batch and _within(counts, batch * p, sd), counts
        epochs.append(ids)
    first, second = np.concatenate(epochs[:24]), np.concatenate(epochs[24:])
    assert sorted(first) == sorted(second) == list(range(n))  # each epoch: every image exactly once
    assert (first != second).any()


def test_weighted_epochs_draw_classes_uniformly_from_the_first_batch_on():
    labels = np.repeat([0, 1, 2], [27_000, 2_000, 1_000])  # class-sorted, very imbalanced
    order = epoch_order(labels, seed=3, epoch=0, sampling="weighted")
    assert len(order) == len(labels)
    batch = 500
    sd = np.sqrt(batch * (1 / 3) * (2 / 3))  # binomial: classes drawn uniformly, with replacement
    for start in range(0, len(order), batch):
        counts = np.bincount(labels[order[start:start + batch]], minlength=3)
        assert _within(counts, np.full(3, batch / 3), sd), (start, counts)
    for c in range(3):
        drawn = np.bincount(order[labels[order] == c], minlength=len(labels))[labels == c]
        # Each class is a stream of fresh permutations: counts differ by at most one within a class.
        assert drawn.max() - drawn.min() <= 1, c
    assert (epoch_order(labels, 3, 1, "weighted") != order).any()
    assert (epoch_order(labels, 3, 0, "weighted") == order).all()


def test_epoch_data_depends_only_on_seed_and_epoch(folder):
    data = TrainingData(folder, 16, 4, seed=11)
    run = [(x.numpy(), y.numpy()) for x, y in data.epochs(0, 3)]
    resumed = [(x.numpy(), y.numpy()) for x, y in TrainingData(folder, 16, 4, seed=11).epochs(2, 1)]
    assert len(run) == 3 * data.steps_per_epoch and len(resumed) == data.steps_per_epoch
    for (x, y), (rx, ry) in zip(run[-data.steps_per_epoch:], resumed, strict=True):
        assert np.array_equal(x, rx) and np.array_equal(y, ry)  # same process, same ops: exact
    other = np.concatenate([x.numpy() for x, _ in TrainingData(folder, 16, 4, seed=12).epochs(2, 1)])
    assert not np.array_equal(other, np.concatenate([x for x, _ in resumed]))


def test_uncached_pipeline_gives_the_cached_images(folder):
    cached = [x.numpy() for x, _ in TrainingData(folder, 16, 4, seed=1).epochs()]
    decoded = [x.numpy() for x, _ in TrainingData(folder, 16, 4, seed=1, cache=False).epochs()]
    for a, b in zip(cached, decoded, strict=True):
        assert np.array_equal(a, b)


def _first_epoch_hashes(demo_root: Path) -> list[str]:
    """Hashes of the first training epoch (images and labels) of a demo config with seeds 42 and 43,
    computed in a fresh interpreter."""
    code = textwrap.dedent(f"""
        import hashlib
        from fer_keras.config import make_config
        from fer_keras.train.loop import _datasets, prepare_data
        for seed in (42, 43):
            cfg = make_config({{"model": "sequential_simple", "res": 32, "batch": 16, "limit_per_class": 10,
                               "seed": seed, "data_root": {str(demo_root)!r}, "crossdomain": None}})
            train, steps, _ = _datasets(cfg, prepare_data(cfg), cfg.batch)
            h = hashlib.sha256()
            for x, y in train(0, 0).take(steps):
                h.update(x.numpy().tobytes())
                h.update(y.numpy().tobytes())
            print("sha256", h.hexdigest())
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
                         timeout=300)
    return [line.split()[1] for line in out.stdout.splitlines() if line.startswith("sha256 ")]


def test_same_config_and_seed_give_the_same_batches_in_two_processes(demo_root):
    first, second = _first_epoch_hashes(demo_root), _first_epoch_hashes(demo_root)
    assert len(first) == 2 and len(first[0]) == 64 and first == second  # same machine and process type: exact equality
    assert first[0] != first[1]  # another seed, other batches


@pytest.mark.parametrize("cache", [True, False])
def test_training_pipeline_erases_with_the_real_augmentation(folder, cache):
    """The warp's raw op forgot the batch's static height and width, and erasing (which needed them)
    failed on the first training batch: the fast-recipe test stubbed erasing and never saw it."""
    plain = TrainingData(folder, 16, 4, seed=3, cache=cache).epochs()
    erased = TrainingData(folder, 16, 4, seed=3, cache=cache, erasing=1.0).epochs()
    assert plain.element_spec[0].shape.as_list() == [None, 16, 16, 3]
    changed = [not np.array_equal(a.numpy(), b.numpy()) for (a, _), (b, _) in zip(plain, erased, strict=True)]
    assert all(changed), "probability 1 erases a rectangle of every batch"
