"""AffectNet (Mollahosseini et al. 2017), manually annotated part: training.csv, validation.csv.

Columns used: subDirectory_filePath, expression (0-10 = neutral, happy, sad, surprise, fear,
disgust, anger, contempt, none, uncertain, non-face) and optionally the face box
(face_x, face_y, face_width, face_height). Codes 8-10 are dropped; contempt (7) is dropped
unless asked for. training.csv -> train, validation.csv -> val (AffectNet's test set is not
public; ``--val-split test`` writes the validation set as the test split, as many papers do).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fer_keras.data.readers import csv_row_where
from fer_keras.labels import AFFECTNET_CODES

from .common import DatasetWriter, label_code, require_columns

NAME = "affectnet"
BOX = ["face_x", "face_y", "face_width", "face_height"]


def run(src: Path, dst: Path, *, images: Path | None = None, val_split: str = "val",
        contempt: bool = False, crop_box: bool = False, force: bool = False,
        skip_bad: bool = False) -> DatasetWriter:
    images = images or src / "Manually_Annotated_Images"
    files = {"train": src / "training.csv", val_split: src / "validation.csv"}
    tables = {}
    for split, f in files.items():
        if not f.is_file():
            raise FileNotFoundError(f"AffectNet label file not found: {f}")
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        df.columns = [c.strip() for c in df.columns]
        require_columns(df, ["subDirectory_filePath", "expression", *(BOX if crop_box else [])],
                        f)
        codes = [label_code(v, AFFECTNET_CODES, csv_row_where(f, row), "expression")
                 for row, v in enumerate(df["expression"])]
        tables[split] = (f, df.assign(code=codes))
    w = DatasetWriter(dst, NAME, src, force=force, skip_bad=skip_bad)
    for split, (f, df) in tables.items():
        for row, rec in enumerate(df.itertuples(index=False)):
            label = AFFECTNET_CODES[rec.code]
            if label is None:
                w.drop(f"code {rec.code} (none/uncertain/non-face)")
                continue
            if label == "contempt" and not contempt:
                w.drop("contempt")
                continue
            path = images / rec.subDirectory_filePath
            name = rec.subDirectory_filePath.replace("/", "_")
            if crop_box:
                _add_cropped(w, f, row, rec, path, split, label, name)
            else:
                w.add_file(path, split, label, name)
    return w


def _add_cropped(w: DatasetWriter, f: Path, row: int, rec, path: Path, split: str,
                 label: str, name: str) -> None:
    img = w.open_listed(path, f"{f} row {row}")
    if img is None:
        return
    x, y, bw, bh = (int(float(getattr(rec, k))) for k in BOX)
    box = (max(0, x), max(0, y), min(img.width, x + bw), min(img.height, y + bh))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"{f}: row {row}: face box {x, y, bw, bh} is outside {path}")
    w.add_array(np.asarray(img.crop(box)), split, label, name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, type=Path, help="folder with training.csv, "
                   "validation.csv (and Manually_Annotated_Images/)")
    p.add_argument("--images", type=Path, help="image folder (default: "
                   "<src>/Manually_Annotated_Images)")
    p.add_argument("--val-split", choices=("val", "test"), default="val")
    p.add_argument("--contempt", action="store_true", help="keep contempt as an 8th class")
    p.add_argument("--crop-box", action="store_true", help="cut out the annotated face box")


def from_args(a: argparse.Namespace) -> DatasetWriter:
    return run(a.src, a.dst, images=a.images, val_split=a.val_split, contempt=a.contempt,
               crop_box=a.crop_box, force=a.force, skip_bad=a.skip_bad)
