"""Issue 13: broken inputs end in a handled result or one clear line, never a traceback or a silent error.

Every file is generated here. CLIs run in a subprocess where the point is that no traceback
reaches the user; the rest call ``main`` in-process to keep the suite fast.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_folder_dataset, write_image
from PIL import ExifTags, Image

from data_prep import anonymize, balance, dedupe, review
from data_prep.importers.__main__ import main as import_main
from data_prep.layout import scan
from fer_keras.data.image_types import DECODABLE_FORMATS, IMAGE_SUFFIXES
from fer_keras.data.readers import (
    DatasetError,
    check_image,
    read_class_folders,
    read_dataset,
    read_fer2013_csv,
)
from fer_keras.data.splits import make_splits

REPO = Path(__file__).resolve().parents[1]


def cli(module: str, *args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def clear_error(res: subprocess.CompletedProcess, match: str) -> None:
    """Exit 2, one ``error:`` line that says ``match``, and no traceback."""
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert res.stderr.startswith("error: ") and match in res.stderr, res.stderr


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height over a few bytes of data: a decode would fail."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def bad_files(folder: Path) -> set[str]:
    """One of each file the trainer rejects; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_image(folder / "src.jpg", seed=99, size=64, mode="RGB").read_bytes()
    (folder / "src.jpg").unlink()
    (folder / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("I am a text file, not a JPEG")
    Image.new("L", (32, 32), 90).save(folder / "blank.png")
    png_header(folder / "huge.png", 12000, 12000)
    write_image(folder / "scan.tif", seed=5)
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 24), np.uint8)).save(
        folder / "tiff_inside.png", format="TIFF")
    return {"corrupt.jpg", "zero.jpg", "text.jpg", "blank.png", "huge.png", "scan.tif", "tiff_inside.png"}


def test_rejected_files_get_their_reason(tmp_path):
    names = bad_files(tmp_path / "happy")
    write_image(tmp_path / "happy" / "ok.png", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning: the header is judged first
        s = read_class_folders(tmp_path)
    reasons = {Path(f).name: why for f, why in s.skipped}
    assert set(reasons) == names and len(s) == 1
    assert "truncated" in reasons["corrupt.jpg"] and "0 bytes" in reasons["zero.jpg"]
    assert reasons["text.jpg"] == "not an image" and "blank" in reasons["blank.png"]
    assert reasons["huge.png"].startswith("too large")
    assert "(.tif)" in reasons["scan.tif"] and reasons["tiff_inside.png"].startswith("TIFF image")


def test_huge_header_is_rejected_before_any_decode(tmp_path):
    # 8000x8000 is under PIL's bomb limit but over ours; a decode of this file would say "truncated".
    assert check_image(png_header(tmp_path / "big.png", 8000, 8000)).startswith("too large (8000x8000 px")


def test_16bit_greyscale_png_is_judged_on_scaled_pixels(tmp_path):
    ramp = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert check_image(tmp_path / "g16.png") is None
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(tmp_path / "flat16.png")
    assert "blank" in check_image(tmp_path / "flat16.png")


def test_every_accepted_type_is_decoded_by_the_pipeline(tmp_path):
    import tensorflow as tf

    assert IMAGE_SUFFIXES == {s for v in DECODABLE_FORMATS.values() for s in v}
    a = np.random.default_rng(0).integers(0, 256, (20, 20, 3), np.uint8)
    for fmt, suffixes in DECODABLE_FORMATS.items():
        path = tmp_path / f"x{suffixes[0]}"
        Image.fromarray(a).save(path, format=fmt)
        assert check_image(path) is None, fmt
        img = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
        assert tuple(img.shape) == (20, 20, 3), fmt
    Image.fromarray(a).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(a).convert("RGBA").save(tmp_path / "rgba.png")
    for name in ("cmyk.jpg", "rgba.png"):  # decoded by tf.io.decode_image too (checked on TF 2.21)
        assert check_image(tmp_path / name) is None, name
    Image.fromarray(a).save(tmp_path / "phone.jpg", format="MPO", save_all=True,
                            append_images=[Image.fromarray(a[::-1])])
    assert Image.open(tmp_path / "phone.jpg").format == "MPO" and check_image(tmp_path / "phone.jpg") is None


def two_splits(root: Path) -> Path:
    make_folder_dataset(root / "train", {"happy": 4, "sad": 4})
    make_folder_dataset(root / "test", {"happy": 3, "sad": 3})
    return root


def test_balance_draws_only_trainable_train_images_and_lists_the_rest(tmp_path):
    src = two_splits(tmp_path / "src")
    names = bad_files(src / "train" / "happy")
    res = cli("data_prep.balance", "--src", src, "--dst", tmp_path / "out", "--per-class", 4)
    assert res.returncode == 0, res.stderr
    assert f"rejected {len(names)} files the trainer would skip" in res.stdout
    assert "warning: the sample mixes" not in res.stdout
    out = tmp_path / "out"
    m = pd.read_csv(out / balance.MANIFEST)
    assert set(m["split"]) == {"train"} and len(m) == 8
    drawn = {Path(p).name for p in (out / "train" / "happy").iterdir()}
    assert drawn == {"0.png", "1.png", "2.png", "3.png"}
    rejected = pd.read_csv(out / balance.REJECTED)
    assert {Path(f).name for f in rejected["file"]} == names
    assert all(check_image(p) is None for p in out.rglob("*.png"))


def test_balance_pools_test_only_when_asked_and_says_so(tmp_path, capsys):
    src = two_splits(tmp_path / "src")
    assert balance.main(["--src", str(src), "--dst", str(tmp_path / "a"), "--per-class", "7",
                         "--split", "all"]) == 0
    assert "warning: the sample mixes splits (test: 6, train: 8)" in capsys.readouterr().out
    assert balance.main(["--src", str(src), "--dst", str(tmp_path / "b"), "--per-class", "7"]) == 2
    assert "fewer than 7" in capsys.readouterr().err
    assert balance.main(["--src", str(src), "--dst", str(tmp_path / "c"), "--per-class", "3",
                         "--split", "val"]) == 2
    assert "has no 'val' split (found: test, train)" in capsys.readouterr().err


def alias_nested(root: Path) -> Path:
    make_folder_dataset(root / "Training" / "Anger", {"a": 3})
    make_folder_dataset(root / "Training" / "happiness", {"batch1": 2, "batch2": 2})  # nested
    make_folder_dataset(root / "test" / "ANGRY", {"x": 1})
    make_folder_dataset(root / "test" / "Happy", {"x": 1})
    return root


def test_every_step_reads_the_trainers_spellings_and_nesting(tmp_path):
    src = alias_nested(tmp_path / "src")
    items = scan(src)
    assert {(it.split, it.label) for it in items} == {("train", "angry"), ("train", "happy"),
                                                      ("test", "angry"), ("test", "happy")}
    assert len(items) == len(read_dataset(src)["train"]) + len(read_dataset(src)["test"])
    res = cli("data_prep.dedupe", "--root", src, "--out", tmp_path / "rep", "--max-sheets", 0)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    m = balance.balance(src, tmp_path / "bal", per_class=3)
    assert m.groupby("class").size().to_dict() == {"angry": 3, "happy": 3}
    assert len(list((tmp_path / "bal" / "train" / "happy").iterdir())) == 3


@pytest.mark.parametrize("make,dedupe_says,balance_says", [
    (lambda r: make_folder_dataset(r / "train", {"happy": 2, "bored": 2}), "'bored' (at ", "'bored' (at "),
    (lambda r: r.mkdir(), "holds no class folders", "holds no class folders"),
    (lambda r: (r / "happy").mkdir(parents=True) or (r / "happy" / "notes.txt").write_text("x"),
     "holds no image files", "happy has no usable image; skipped: 1 not an image type"),
])
def test_layout_errors_are_one_line(tmp_path, make, dedupe_says, balance_says):
    make(tmp_path / "src")
    clear_error(cli("data_prep.dedupe", "--root", tmp_path / "src", "--out", tmp_path / "rep"), dedupe_says)
    clear_error(cli("data_prep.balance", "--src", tmp_path / "src", "--dst", tmp_path / "bal"), balance_says)


def test_dedupe_of_only_unreadable_images_is_one_line(tmp_path, capsys):
    (tmp_path / "src" / "happy").mkdir(parents=True)
    (tmp_path / "src" / "happy" / "x.jpg").write_text("text")
    assert dedupe.main(["--root", str(tmp_path / "src"), "--out", str(tmp_path / "rep")]) == 2
    assert "none of its 1 images could be read" in capsys.readouterr().err


def fer_csv(path: Path, lines: list[str], header: str = "emotion,pixels,Usage") -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


PX = " ".join(map(str, np.random.default_rng(0).integers(0, 256, 16)))


@pytest.mark.parametrize("header,lines,match", [
    ("emo,pixels,Usage", [f"0,{PX},Training"], "missing column(s) ['emotion']"),
    (None, [f"0,{PX},Training", "3,1 2 3 4"], "row 1 (line 3): 2 fields, expected 3"),
    (None, [f"7,{PX},Training"], "row 0 (line 2): unknown emotion code '7'"),
    (None, [f"0,{PX[:-3]} abc,Training"], "row 0 (line 2): pixels contain a non-integer value"),
    (None, [f"3,{' '.join(['7'] * 16)},Training"] * 3,
     "no usable rows: 3 rows skipped as blank images (a single colour): rows 0, 1, 2"),
])
def test_import_and_train_share_the_fer2013_csv_messages(tmp_path, capsys, header, lines, match):
    src = fer_csv(tmp_path / "f.csv", lines, header or "emotion,pixels,Usage")
    assert import_main(["fer2013_csv", "--src", str(src), "--dst", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
    with pytest.raises(DatasetError) as trainer:  # the trainer reads the same file the same way
        read_fer2013_csv(src)
    assert match.replace("no usable rows", "no usable Training rows") in str(trainer.value)


def test_import_cli_bad_csv_has_no_traceback_and_blank_rows_are_listed(tmp_path):
    clear_error(cli("data_prep.importers", "fer2013_csv", "--src",
                    fer_csv(tmp_path / "bad.csv", [f"0,{PX},Training", "1"]), "--dst", tmp_path / "o"),
                "row 1 (line 3): 1 fields, expected 3")
    px48 = " ".join(map(str, np.random.default_rng(0).integers(0, 256, 48 * 48)))
    src = fer_csv(tmp_path / "f.csv", [f"3,{px48},Training", f"3,{' '.join(['0'] * 2304)},Training"])
    res = cli("data_prep.importers", "fer2013_csv", "--src", src, "--dst", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert "blank image (a single colour): 1" in res.stdout and "import_skipped.csv" in res.stdout
    listed = pd.read_csv(tmp_path / "out" / "import_skipped.csv")
    assert listed["where"].tolist() == [f"{src}: row 1 (line 3)"]


def test_training_says_its_classes_and_warns_on_an_absent_one(tmp_path):
    make_folder_dataset(tmp_path / "train", {"happy": 10, "sad": 10})
    (tmp_path / "train" / "sad" / "x.jpg").write_text("text")
    lines = make_splits(tmp_path).report_lines()
    assert lines[0].startswith("data: 2 classes (happy, sad); 18 train / 2 val images")
    assert lines[1].startswith("warning: the training set has no angry, disgust, fear, neutral, surprise images")
    assert lines[2] == "skipped 1 files: 1 not an image (listed in data_summary.json)"


def gps_jpeg(path: Path) -> Path:
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "Jane Private"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (51.0, 30.0, 7.0)}
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(2).integers(0, 256, (32, 32, 3), np.uint8)
    Image.fromarray(rgb).save(path, exif=exif)
    assert Image.open(path).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    return path


def test_anonymize_strips_gps_by_default_and_keeps_it_only_when_asked(tmp_path):
    gps_jpeg(tmp_path / "raw" / "happy" / "jane.jpg")
    write_image(tmp_path / "raw" / "happy" / "b.png", 3)
    res = cli("data_prep.anonymize", "--src", tmp_path / "raw", "--dst", tmp_path / "rel",
              "--mapping", tmp_path / "private" / "map.csv")
    assert res.returncode == 0 and "metadata stripped" in res.stdout, res.stderr
    out = sorted((tmp_path / "rel" / "happy").iterdir())
    assert sorted(p.suffix for p in out) == [".jpg", ".png"]
    for p in out:
        assert b"Jane Private" not in p.read_bytes() and not Image.open(p).getexif()
    anonymize.anonymize(tmp_path / "raw", tmp_path / "kept", tmp_path / "private" / "k.csv", keep_metadata=True)
    kept = next((tmp_path / "kept" / "happy").glob("*.jpg"))
    assert Image.open(kept).getexif().get_ifd(ExifTags.IFD.GPSInfo)


def test_unwritable_output_and_full_disk_are_one_line(tmp_path, capsys, monkeypatch):
    src = two_splits(tmp_path / "src")
    (tmp_path / "file").write_text("x")
    assert balance.main(["--src", str(src), "--dst", str(tmp_path / "file" / "out"), "--per-class", "2"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'file' / 'out'}: Not a directory")

    def full(src, dst, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(balance, "copy_without_metadata", full)
    assert balance.main(["--src", str(src), "--dst", str(tmp_path / "out"), "--per-class", "2"]) == 2
    assert "No space left on device" in capsys.readouterr().err


def test_train_cli_unwritable_output_and_blank_csv_are_one_line(tmp_path, capsys):
    from fer_keras.train import cli as train_cli

    (tmp_path / "file").write_text("x")
    assert train_cli.main(["--config", "configs/demo.yaml", "--out", str(tmp_path / "file" / "runs")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write runs to {tmp_path / 'file' / 'runs'}")
    blank = fer_csv(tmp_path / "blank.csv", [f"3,{' '.join(['7'] * 16)},Training"] * 3)
    assert train_cli.main(["--config", "configs/demo.yaml", "--dataset", str(blank), "--data-root", str(tmp_path),
                           "--crossdomain", str(tmp_path / "none"), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "has no usable Training rows: 3 rows skipped as blank images (a single colour): rows 0, 1, 2" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("cells,index,match", [
    ("train_happy_p009:1", None, "sheet 'train_happy_p009' is not in {index}; did you mean 'train_happy_p001'?"),
    ("bored:1", None, "sheet 'bored' is not in {index} (it has train_happy_p001, train_sad_p001)"),
    ("train_sad_p001:2,7-9", None, "sheet 'train_sad_p001' has no cell(s) 7, 8, 9: its cells are 1-4"),
    ("train_sad_p001:1", "sheet,number\nx,1\n",
     "{index} has no column(s) ['cell', 'path']: not an index.csv written by 'review sheets'"),
])
def test_review_unknown_cells_are_one_line(tmp_path, capsys, cells, index, match):
    root = make_folder_dataset(tmp_path / "d" / "train", {"happy": 3, "sad": 4}).parent
    assert review.main(["sheets", "--root", str(root), "--out", str(tmp_path / "rev")]) == 0
    path = tmp_path / "rev" / "index.csv"
    if index is not None:
        path = tmp_path / "other.csv"
        path.write_text(index)
    capsys.readouterr()
    assert review.main(["exclude", "--root", str(root), "--index", str(path), "--cells", cells]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {match.format(index=path)}\n", err
    assert not (root / "exclude.txt").exists()
