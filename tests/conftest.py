"""Shared test setup: quiet TensorFlow, few threads, data the tests generate themselves."""

import os
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The synthetic demo datasets (demo/, demo_wild/), generated once per test session."""
    from fer_keras.data.demo import ensure_demo

    root = tmp_path_factory.mktemp("data")
    ensure_demo(root)
    return root


def write_image(path: Path, seed: int = 0, size: int = 24, mode: str = "L") -> Path:
    """A small random (non-blank) image."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def stable_seed(*parts: object) -> int:
    """A seed that is the same in every process (``hash`` of a str is salted per interpreter)."""
    return zlib.crc32(repr(parts).encode())


def make_folder_dataset(root: Path, counts: dict[str, int], size: int = 24) -> Path:
    """``root/<class>/<i>.png`` with ``counts[class]`` random images each."""
    for c, n in counts.items():
        for i in range(n):
            write_image(root / c / f"{i}.png", seed=stable_seed(c, i), size=size)
    return root


#: Options the generic model tests build big models with (their own options, only smaller), so the
#: registry-wide fixture stays fast; ``test_parameter_count`` builds every model at full size.
TINY_OPTIONS: dict[str, dict] = {
    "resmasking_net": {"mask_growth": 1, "stage_blocks": (1, 1, 1, 1)},  # 138M -> a few M parameters
    "esr": {"branches": 2},
}


# A pre-trained-style model small enough for end-to-end tests of two-phase fine-tuning (registered by the
# ``tiny_pretrained`` fixture; its "imagenet" weights are a file the test writes).
def tiny_backbone(input_shape, num_classes, *, pretrain, pooling, weights_dir, paper_faithful=False):
    import keras

    from fer_keras.models._head import classifier_on_backbone

    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, name="bb_conv")(inp)
    backbone = keras.Model(inp, x, name="backbone")
    if pretrain == "imagenet":
        from fer_keras.models.weights import find_weights

        backbone.load_weights(find_weights("tiny.weights.h5", "https://example.org/tiny", weights_dir))
    return classifier_on_backbone(backbone, input_shape, num_classes, pooling=pooling, name="tiny",
                                  preprocessing="rescale" if paper_faithful else "tf")


@pytest.fixture
def tiny_pretrained(monkeypatch):
    from fer_keras import registry

    spec = registry.ModelSpec(name="tiny_pretrained", builder=tiny_backbone, family="test", paper_name="-",
                              description="test-only", pretrains=("scratch", "imagenet"))
    monkeypatch.setitem(registry._REGISTRY, "tiny_pretrained", spec)
    return spec


@pytest.fixture(scope="module")
def bright(tmp_path_factory) -> Path:
    """data_root holding bright/train (16 a class) and bright/test (8 a class): a small learnable set
    (stored_runs.write_set), for end-to-end training tests."""
    from stored_runs import write_set  # imports Keras: only for the tests that use it

    root = tmp_path_factory.mktemp("data")
    write_set(root / "bright" / "train", 16, seed=1)
    write_set(root / "bright" / "test", 8, seed=2)
    return root
