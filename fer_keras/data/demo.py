"""The built-in SYNTHETIC demo dataset: drawn cartoon faces, not real people.

It exists so the demo and the tests run anywhere without downloads. The geometry
of brows, eyes and mouth encodes the seven expressions. Two domains mimic the
BTFER setting: an imbalanced grey "lab" training domain (``demo/train``,
``demo/test``) and a balanced, colourful, noisy "in-the-wild" domain
(``demo_wild``) for cross-domain evaluation. Generation is deterministic.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fer_keras.labels import CANONICAL_CLASSES

VERSION = "3"
SIZE = 64
TRAIN_COUNTS = {"angry": 100, "disgust": 28, "fear": 72, "happy": 180,
                "neutral": 128, "sad": 96, "surprise": 80}
TEST_PER_CLASS = 16
WILD_PER_CLASS = 24

# expression -> (brow tilt, brow height, eye openness, mouth shape, mouth curvature, mouth openness)
_FACES = {
    "angry":    (0.45, -0.02, 0.55, "line", -0.10, 0.05),
    "disgust":  (0.20, -0.04, 0.35, "wave", -0.25, 0.10),
    "fear":     (-0.35, 0.10, 1.30, "oval", -0.10, 0.45),
    "happy":    (0.00, 0.02, 0.60, "arc", 0.90, 0.20),
    "neutral":  (0.00, 0.00, 0.85, "line", 0.00, 0.05),
    "sad":      (-0.45, 0.00, 0.70, "arc", -0.80, 0.10),
    "surprise": (0.00, 0.16, 1.40, "oval", 0.00, 1.00),
}


def _face(expression: str, rng: np.random.Generator, wild: bool) -> Image.Image:
    tilt, brow_h, eye_open, shape, curve, mouth_open = _FACES[expression]
    j = lambda s: float(rng.normal(0, s))  # noqa: E731 - small jitter helper
    big = SIZE * 4  # draw large, downsample: smooth edges
    if wild:
        bg = tuple(int(v) for v in rng.integers(0, 256, 3))
        skin = tuple(int(v) for v in rng.choice([[255, 219, 172], [224, 172, 105], [141, 85, 36],
                                                  [198, 134, 66], [255, 205, 148]]) + rng.integers(-15, 15, 3))
        ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    else:
        g, k = int(rng.integers(70, 200)), int(rng.integers(205, 245))
        bg, skin, ink = (g, g, g), (k, k, k), (30, 30, 30)
    img = Image.new("RGB", (big, big), bg)
    d = ImageDraw.Draw(img)
    # Lab faces vary too (position, size, tilt, lighting), so augmentation is not a domain shift.
    cx, cy = big / 2 + j(big * 0.05), big / 2 + j(big * 0.05)
    fw, fh = big * (0.36 + j(0.035)), big * (0.44 + j(0.035))
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin)
    w = max(3, int(big * 0.045))  # bold strokes: still 2 px wide at 48 px
    eye_y, eye_dx = cy - fh * 0.22, fw * 0.42
    for side in (-1, 1):
        ex = cx + side * eye_dx
        ew, eh = fw * 0.2, fw * 0.13 * max(eye_open + j(0.08), 0.15)
        d.ellipse([ex - ew, eye_y - eh, ex + ew, eye_y + eh], fill=(250, 250, 250), outline=ink, width=w)
        d.ellipse([ex - ew * 0.35, eye_y - min(eh, ew * 0.35), ex + ew * 0.35, eye_y + min(eh, ew * 0.35)], fill=ink)
        by = eye_y - fw * (0.28 + brow_h + j(0.015))
        inner, outer = ex - side * fw * 0.22, ex + side * fw * 0.22
        t = (tilt + j(0.05)) * fw * 0.18  # positive tilt: inner end lower (frown)
        d.line([inner, by + t, outer, by - t], fill=ink, width=w + 2)
    my, mw = cy + fh * 0.45, fw * (0.5 + j(0.03))
    if shape == "oval":
        mh = fw * 0.12 * (mouth_open + j(0.05)) + 4
        d.ellipse([cx - mw * 0.6, my - mh, cx + mw * 0.6, my + mh], fill=(90, 20, 20), outline=ink, width=w)
    elif shape == "wave":
        pts = [(cx - mw + 2 * mw * k / 8, my + math.sin(k * 1.6) * fw * 0.05 * (1 + curve)) for k in range(9)]
        d.line(pts, fill=ink, width=w + 1)
    else:
        c = (curve + j(0.08)) * fw * 0.3
        pts = [(cx - mw + 2 * mw * k / 12, my - c * (1 - ((k - 6) / 6) ** 2) + c) for k in range(13)]
        d.line(pts, fill=ink, width=w + 1)
    img = img.rotate(j(12 if wild else 6), resample=Image.BILINEAR, fillcolor=bg)
    img = img.resize((SIZE, SIZE), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 12 if wild else 4, (SIZE, SIZE, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(0.4)) if wild else img.convert("L")


def write_demo(root: Path, counts: dict[str, int], *, wild: bool, seed: int) -> None:
    """Write ``counts[class]`` drawn faces per class into ``root/<class>/``."""
    rng = np.random.default_rng(seed)
    for cls in CANONICAL_CLASSES:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(counts[cls]):
            _face(cls, rng, wild).save(root / cls / f"{cls}_{i:04d}.png")


#: The datasets :func:`ensure_demo` writes when a run names them.
GENERATED_SETS = ("demo", "demo_wild")


def ensure_demo(data_root: Path) -> tuple[Path, Path]:
    """Create ``demo`` and ``demo_wild`` under ``data_root`` once; return both folders."""
    data_root = Path(data_root)
    demo, wild = data_root / "demo", data_root / "demo_wild"
    stamp = data_root / ".demo_version"
    if not (stamp.is_file() and stamp.read_text() == VERSION and demo.is_dir() and wild.is_dir()):
        write_demo(demo / "train", TRAIN_COUNTS, wild=False, seed=1)
        write_demo(demo / "test", dict.fromkeys(CANONICAL_CLASSES, TEST_PER_CLASS), wild=False, seed=2)
        write_demo(wild, dict.fromkeys(CANONICAL_CLASSES, WILD_PER_CLASS), wild=True, seed=3)
        (demo / "README.txt").write_text("SYNTHETIC demo faces drawn by fer_keras.data.demo; not real people.\n")
        stamp.write_text(VERSION)
    return demo, wild
