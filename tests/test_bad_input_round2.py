"""Bad input, round two (issue 27): each case fed through the command a user runs.

Alpha channels decoded one way everywhere, faces below the minimum size skipped and reported,
no half-written outputs, one rule for empty class folders, and mistakes reported before
TensorFlow is imported.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_folder_dataset
from PIL import ExifTags, Image, PngImagePlugin
from stored_runs import stored_run, write_set

from data_prep import anonymize, balance, crop, dedupe, review
from data_prep.importers.__main__ import main as import_main
from fer_keras.data.image_types import MIN_FACE_SIDE
from fer_keras.data.images import open_rgb
from fer_keras.data.readers import check_image, read_dataset
from fer_keras.evaluate import crossdomain
from fer_keras.predict import cli as predict_cli
from fer_keras.train import cli as train_cli

REPO = Path(__file__).resolve().parents[1]
EMPTY = "is empty: put its images in it, or remove the folder if the dataset has no such class"


def python(code: str, *args: str | Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (so 'TensorFlow was not imported' can be checked)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def pipeline_pixels(path: Path) -> np.ndarray:
    """What the training and evaluation pipeline decodes from ``path``."""
    import tensorflow as tf

    from fer_keras.data.pipeline import decode_bytes

    return decode_bytes(tf.io.read_file(str(path))).numpy()


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def alpha_png(path: Path, mode: str, seed: int = 0, size: int = 32) -> Path:
    """An RGBA or LA PNG whose alpha runs from clear to opaque, over random colours."""
    rng = np.random.default_rng(seed)
    channels = 4 if mode == "RGBA" else 2
    a = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    a[..., -1] = np.linspace(0, 255, size * size, dtype=np.uint8).reshape(size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a, mode).save(path)
    return path


# --- one alpha rule ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_decoded_alike_by_pipeline_predict_import_crop_and_anonymize(tmp_path, mode):
    src = alpha_png(tmp_path / "raw" / "happy" / "face.png", mode)
    want = pipeline_pixels(src)
    # Compositing onto white (the old rule of open_rgb) gives other pixels: this test tells the rules apart.
    white = Image.alpha_composite(Image.new("RGBA", (32, 32), "white"), Image.open(src).convert("RGBA"))
    assert np.abs(np.asarray(white.convert("RGB")).astype(int) - want).max() > 50
    assert np.array_equal(np.asarray(open_rgb(src)), want)

    assert import_main(["folders", "--src", str(tmp_path / "raw"), "--dst", str(tmp_path / "imp")]) == 0
    assert np.array_equal(pixels(tmp_path / "imp" / "train" / "happy" / "face.png"), want)

    assert anonymize.main(["--src", str(tmp_path / "raw"), "--dst", str(tmp_path / "anon"),
                           "--mapping", str(tmp_path / "private" / "map.csv")]) == 0
    (released,) = (tmp_path / "anon" / "happy").iterdir()
    assert np.array_equal(pixels(released), want)

    whole = crop.Face((0, 0, 32, 32), 1.0)
    crop.crop_folder(tmp_path / "raw", tmp_path / "crop", crop.CropOptions(margin=0, size=32, ext=".png", min_face=1),
                     detector=lambda rgb: [whole], progress=False)
    assert np.array_equal(pixels(tmp_path / "crop" / "happy" / "face.png"), want)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_fer_predict_sees_the_pixels_the_run_was_scored_on(tmp_path, mode, capsys):
    run = stored_run(tmp_path / "run", ["angry", "happy", "sad"])
    photos = tmp_path / "photos"
    alpha_png(photos / "alpha.png", mode)
    Image.fromarray(pipeline_pixels(photos / "alpha.png")).save(photos / "twin.png")  # the pipeline's pixels
    out = tmp_path / "p.json"
    assert predict_cli.main([str(photos), "--run", str(run), "--no-detect", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    by_name = {Path(p["source"]).name: p["probabilities"] for p in json.loads(out.read_text())["predictions"]}
    assert by_name["alpha.png"] == by_name["twin.png"]


def test_transparency_the_pipeline_cannot_decode_is_skipped_and_import_converts_it(tmp_path):
    rgba = alpha_png(tmp_path / "a.png", "RGBA")
    src = tmp_path / "raw" / "happy"
    src.mkdir(parents=True)
    Image.open(rgba).save(src / "alpha.webp", lossless=True)
    palette = Image.open(rgba).convert("RGB").quantize(16)
    palette.save(src / "clear.gif", transparency=int(np.asarray(palette)[0, 0]))
    assert check_image(src / "alpha.webp").startswith("WebP with an alpha channel")
    assert check_image(src / "clear.gif").startswith("GIF with transparent pixels")
    assert import_main(["folders", "--src", str(tmp_path / "raw"), "--dst", str(tmp_path / "imp")]) == 0
    for name in ("alpha", "clear"):
        out = tmp_path / "imp" / "train" / "happy" / f"{name}.png"
        assert check_image(out) is None
        assert np.array_equal(pipeline_pixels(out), np.asarray(open_rgb(next(src.glob(f"{name}.*")))))


# --- minimum face size ---------------------------------------------------------------------------
def tiny(path: Path, side: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.arange(side * side * 3, dtype=np.uint8).reshape(side, side, 3) * 9).save(path)
    return path


def test_a_3px_image_is_skipped_and_reported_by_balance_and_the_trainers_reader(tmp_path, capsys):
    src = make_folder_dataset(tmp_path / "src", {"happy": 3, "sad": 3})
    tiny(src / "happy" / "tiny.png")
    tiny(src / "sad" / "edge.png", MIN_FACE_SIDE)  # exactly the minimum: a face
    assert check_image(src / "sad" / "edge.png") is None
    assert balance.main(["--src", str(src), "--dst", str(tmp_path / "bal"), "--per-class", "3"]) == 0
    assert "1 too small to be a face" in capsys.readouterr().out
    rejected = pd.read_csv(tmp_path / "bal" / balance.REJECTED)
    assert rejected["file"].tolist() == ["happy/tiny.png"]
    assert rejected["reason"][0] == (f"too small to be a face (3x3 px; the shorter side needs at least "
                                     f"{MIN_FACE_SIDE} px)")
    assert not (tmp_path / "bal" / "happy" / "tiny.png").exists()
    assert [f for f, _ in read_dataset(src)["all"].skipped] == [str(src / "happy" / "tiny.png")]


def test_training_refuses_a_class_of_only_too_small_images(tmp_path):
    data = make_folder_dataset(tmp_path / "d" / "train", {"happy": 4})
    for i in range(3):
        tiny(data / "sad" / f"{i}.png")
    res = python("from fer_keras.train.cli import main; raise SystemExit(main())", "--config", "configs/demo.yaml",
                 "--dataset", tmp_path / "d", "--crossdomain", "null", "--out", tmp_path / "runs")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"class folder {data / 'sad'} has no usable image; skipped: 3 too small to be a face" in res.stderr


def test_crossdomain_skips_a_too_small_image_and_prints_every_skipped_file(tmp_path, capsys):
    wild = write_set(tmp_path / "wild", per_class=2, seed=3)
    tiny(wild / "sad" / "speck.png")
    (wild / "happy" / "broken.png").write_bytes(b"\x89PNG not really")
    stored_run(tmp_path / "runs" / "r", ["angry", "happy", "sad"], data_root=str(tmp_path), crossdomain="wild")
    assert crossdomain.main(["--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    result = tmp_path / "runs" / "r" / "crossdomain_wild.json"
    assert f"r on wild: skipped 2 files: 1 not an image, 1 too small to be a face (listed in {result})" in out
    assert f"  {wild / 'sad' / 'speck.png'}: too small to be a face (3x3 px;" in out
    assert f"  {wild / 'happy' / 'broken.png'}: not an image" in out
    assert len(json.loads(result.read_text())["skipped"]) == 2


def test_fer_predict_skips_and_reports_a_too_small_image(tmp_path, capsys):
    run = stored_run(tmp_path / "run", ["angry", "happy", "sad"])
    photos = write_set(tmp_path / "photos", per_class=1, seed=1)
    speck = tiny(photos / "speck.png")
    assert predict_cli.main([str(speck), "--run", str(run), "--no-detect"]) == 1
    assert capsys.readouterr().err == (f"fer-predict: error: {speck}: too small to be a face (3x3 px; the shorter "
                                       f"side needs at least {MIN_FACE_SIDE} px)\n")
    assert predict_cli.main([str(photos), "--run", str(run), "--no-detect"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("speck", "happy"))]
    assert rows[0].startswith("happy/0.png") and "happy" in rows[0].split()[-2]
    assert rows[1].startswith("speck.png") and "(" + str(speck) + ": too small to be a face" in rows[1]


# --- balance strips metadata -------------------------------------------------------------------
def test_balance_strips_exif_gps_and_text_and_keeps_every_pixel(tmp_path, capsys):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "Jane Private"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (51.0, 30.0, 7.0)}
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Jane Private")
    for cls in ("happy", "sad"):
        (src / cls).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(src / cls / "photo.jpg", exif=exif,
                                                                           comment=b"Jane Private")
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(src / cls / "scan.png", exif=exif,
                                                                           pnginfo=text)
    assert b"Jane Private" in (src / "happy" / "photo.jpg").read_bytes()
    assert balance.main(["--src", str(src), "--dst", str(tmp_path / "bal"), "--per-class", "2"]) == 0
    for cls in ("happy", "sad"):
        for name in ("photo.jpg", "scan.png"):
            out = tmp_path / "bal" / cls / name
            assert b"Jane Private" not in out.read_bytes() and b"Exif" not in out.read_bytes(), out
            assert not Image.open(out).getexif()
            assert np.array_equal(pixels(out), pixels(src / cls / name))
            assert np.array_equal(pipeline_pixels(out), pipeline_pixels(src / cls / name))


# --- no half-written outputs ---------------------------------------------------------------------
def test_anonymize_skips_and_names_unreadable_images_and_leaves_no_half_release(tmp_path, capsys, monkeypatch):
    src = make_folder_dataset(tmp_path / "raw", {"happy": 4, "sad": 4})
    (src / "sad" / "cut.png").write_bytes((src / "sad" / "0.png").read_bytes()[:60])
    mapping = tmp_path / "private" / "map.csv"
    assert anonymize.main(["--src", str(src), "--dst", str(tmp_path / "rel"), "--mapping", str(mapping)]) == 0
    out = capsys.readouterr().out
    assert f"left out 1 unreadable image(s) (listed in {anonymize.skipped_file(mapping)}):" in out
    assert "  sad/cut.png: unreadable or truncated image" in out
    assert pd.read_csv(anonymize.skipped_file(mapping))["original"].tolist() == ["sad/cut.png"]
    assert len(list((tmp_path / "rel").rglob("*.png"))) == 8 and len(pd.read_csv(mapping)) == 8

    written = []

    def full_after_three(img, path, **kw):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written.append(path)
        Image.fromarray(np.asarray(img)).save(path)

    monkeypatch.setattr(anonymize, "save_clean", full_after_three)
    again = tmp_path / "again"
    assert anonymize.main(["--src", str(src), "--dst", str(again), "--mapping", str(tmp_path / "m2.csv")]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not any(again.iterdir()) and not (tmp_path / "m2.csv").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    monkeypatch.undo()
    assert anonymize.main(["--src", str(src), "--dst", str(again), "--mapping", str(tmp_path / "m2.csv")]) == 0


def test_folders_import_validates_before_writing_and_skip_bad_names_the_file(tmp_path, capsys):
    src = make_folder_dataset(tmp_path / "raw" / "train", {"happy": 30, "sad": 30}).parent
    (src / "train" / "sad" / "zz_cut.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dst = tmp_path / "imp"
    assert import_main(["folders", "--src", str(src), "--dst", str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 unreadable image(s), nothing written") and "zz_cut.png" in err
    assert not dst.exists()
    assert import_main(["folders", "--src", str(src), "--dst", str(dst), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert f"  {src / 'train' / 'sad' / 'zz_cut.png'}: unreadable or truncated image" in out
    assert pd.read_csv(dst / "import_skipped.csv")["where"].tolist() == [str(src / "train" / "sad" / "zz_cut.png")]
    assert len(list(dst.rglob("*.png"))) == 60


# --- empty class folders: one rule, one message --------------------------------------------------
def _empty_class_set(root: Path) -> Path:
    make_folder_dataset(root / "train", {"happy": 3, "sad": 3})
    (root / "train" / "angry").mkdir()
    return root


@pytest.mark.parametrize("command", ["train", "balance", "dedupe", "review", "anonymize", "import", "crossdomain"])
def test_an_empty_class_folder_is_refused_by_every_command_with_one_message(tmp_path, capsys, command):
    data = _empty_class_set(tmp_path / "data")
    out = tmp_path / "out"
    runs = {
        "train": lambda: train_cli.main(["--config", "configs/demo.yaml", "--dataset", str(data), "--out", str(out)]),
        "balance": lambda: balance.main(["--src", str(data), "--dst", str(out), "--per-class", "1"]),
        "dedupe": lambda: dedupe.main(["--root", str(data), "--out", str(out)]),
        "review": lambda: review.main(["sheets", "--root", str(data), "--out", str(out)]),
        "anonymize": lambda: anonymize.main(["--src", str(data), "--dst", str(out),
                                             "--mapping", str(tmp_path / "m.csv")]),
        "import": lambda: import_main(["folders", "--src", str(data), "--dst", str(out)]),
        "crossdomain": lambda: crossdomain.main(["--runs", str(stored_run(
            tmp_path / "runs" / "r", ["angry", "happy", "sad"], data_root=str(tmp_path), crossdomain="data"))]),
    }
    assert runs[command]() in (1, 2)
    err = capsys.readouterr().err
    assert f"class folder {data / 'train' / 'angry'} {EMPTY}" in err, err
    assert "Traceback" not in err and not (out.exists() and any(out.rglob("*.png")))


# --- fer-predict: the output path and the model file -------------------------------------------
def test_fer_predict_out_in_a_file_fails_before_any_work(tmp_path):
    photo = write_set(tmp_path / "photos", per_class=1, seed=1) / "happy" / "0.png"
    (tmp_path / "file").write_text("x")
    res = python("from fer_keras.predict.cli import main; import sys; rc = main(); "
                 "assert 'tensorflow' not in sys.modules; raise SystemExit(rc)",
                 photo, "--no-detect", "--out", tmp_path / "file" / "r.csv")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == f"fer-predict: error: --out {tmp_path / 'file' / 'r.csv'}: {tmp_path / 'file'} is a file, " \
                         "not a folder\n"


def test_fer_predict_unwritable_out_and_a_failed_write_are_one_line(tmp_path, capsys, monkeypatch):
    photo = write_set(tmp_path / "photos", per_class=1, seed=1) / "happy" / "0.png"

    def denied(folder):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))

    def no_work(*a, **kw):
        raise AssertionError("work started before --out was checked")

    with monkeypatch.context() as m:
        m.setattr(predict_cli, "check_writable", denied)
        m.setattr(predict_cli, "quiet_tensorflow", no_work)
        assert predict_cli.main([str(photo), "--no-detect", "--out", str(tmp_path / "ro" / "r.json")]) == 1
    assert capsys.readouterr().err == (f"fer-predict: error: --out {tmp_path / 'ro' / 'r.json'}: cannot write in "
                                       f"{tmp_path / 'ro'} (Permission denied)\n")

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "r.json"))

    monkeypatch.setattr(predict_cli, "write_results", full)
    run = stored_run(tmp_path / "run", ["angry", "happy", "sad"])
    assert predict_cli.main([str(photo), "--run", str(run), "--no-detect", "--out", str(tmp_path / "r.json")]) == 1
    assert capsys.readouterr().err == f"fer-predict: error: {tmp_path / 'r.json'}: No space left on device\n"


def test_a_truncated_keras_file_is_named_as_such_not_as_missing(tmp_path, capsys):
    from fer_keras.predict.predictor import load_run
    from fer_keras.runs import ModelFileError, Run

    run = stored_run(tmp_path / "run", ["angry", "happy", "sad"])
    whole = (run / "best.keras").read_bytes()
    cut = tmp_path / "model.keras"
    cut.write_bytes(whole[: len(whole) // 2])
    said = f"{cut} ({len(whole) // 2:,} bytes) is not a readable Keras archive: probably truncated or corrupt"
    with pytest.raises(ModelFileError, match=said.replace("(", r"\(").replace(")", r"\)")):
        load_run(cut)
    photo = write_set(tmp_path / "photos", per_class=1, seed=1) / "happy" / "0.png"
    assert predict_cli.main([str(photo), "--run", str(cut), "--no-detect"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fer-predict: error: {said}") and err.count("\n") == 1 and "File not found" not in err
    (run / "best.keras").write_bytes(whole[:-200])  # the central directory cut off: same message for a run
    with pytest.raises(ModelFileError, match="not a readable Keras archive"):
        Run(run).model()
    with zipfile.ZipFile(tmp_path / "crc.keras", "w") as z:
        z.writestr("config.json", "{}" * 100)
    damaged = bytearray((tmp_path / "crc.keras").read_bytes())
    damaged[damaged.index(b"{}{}") + 10] = ord("x")  # stored uncompressed: one byte changed, the CRC no longer holds
    (tmp_path / "crc.keras").write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match="config.json fails its checksum"):
        load_run(tmp_path / "crc.keras")


def test_a_run_without_classes_json_gives_one_note_line(tmp_path, capsys):
    import keras

    run = tmp_path / "run"
    run.mkdir()
    inp = keras.Input((32, 32, 3))
    keras.Model(inp, keras.layers.Dense(7, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))).save(
        run / "best.keras")
    photo = write_set(tmp_path / "photos", per_class=1, seed=1) / "happy" / "0.png"
    assert predict_cli.main([str(photo), "--run", str(run), "--no-detect"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"fer-predict: note: no best.classes.json or classes.json beside {run / 'best.keras'}; "
                          "assuming the canonical order")
    assert err.count("\n") == 1 and "UserWarning" not in err


# --- crop workers ------------------------------------------------------------------------------------
def test_crop_workers_hide_tensorflows_log_lines(tmp_path, capfd, monkeypatch):
    # TensorFlow's oneDNN notice, printed whatever the CPU once oneDNN is on and nothing silences the log
    # (the suite's conftest does, and TF_ENABLE_ONEDNN_OPTS=0 removes the notice): something to hide.
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    loud = python("import tensorflow as tf; tf.constant(1.0) + 1.0")
    assert "oneDNN" in loud.stderr or "cpu_feature_guard" in loud.stderr  # what there is to hide
    make_folder_dataset(tmp_path / "raw", {"happy": 2, "sad": 2})
    capfd.readouterr()
    # The command's own detector (MTCNN, which loads TensorFlow in each spawned worker).
    s = crop.crop_folder(tmp_path / "raw", tmp_path / "out", workers=2, progress=False, quiet=True)
    assert s.cropped + s.rejected == 4
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "cpu_feature_guard" not in err and "absl" not in err, err


# --- mistakes before TensorFlow -----------------------------------------------------------------------
def test_a_grid_file_given_as_a_run_config_says_so(tmp_path, capsys):
    assert train_cli.main(["--config", "experiments/demo.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: experiments/demo.yaml is an experiment grid (it has 'base', 'fixed', 'grid', "
                          "'include'), not a run config: run its points with `python -m fer_keras.grid "
                          "experiments/demo.yaml`")
    assert "did you mean" not in err


@pytest.mark.parametrize("args,said", [
    (["--config", "{typo}"], "unknown key 'balanse' in {typo}; did you mean 'balance'?"),
    (["--config", "{broken}"], "config file {broken} is not valid YAML"),
    (["--config", "experiments/demo.yaml"], "is an experiment grid"),
    (["--dataset", "{csv}"], "{csv}: missing column(s) ['pixels']"),
    (["--dataset", "{empty}"], f"class folder {{empty}}/train/angry {EMPTY}"),
])
def test_config_yaml_and_csv_mistakes_are_reported_without_importing_tensorflow(tmp_path, args, said):
    files = {"typo": tmp_path / "typo.yaml", "broken": tmp_path / "broken.yaml", "csv": tmp_path / "fer.csv",
             "empty": _empty_class_set(tmp_path / "empty")}
    files["typo"].write_text("model: sequential_simple\nbalanse: none\n")
    files["broken"].write_text("model: [sequential_simple\n")
    files["csv"].write_text("emotion,Usage\n3,Training\n")
    argv = [a.format(**files) for a in args] + ["--out", str(tmp_path / "runs")]
    res = python("from fer_keras.train.cli import main; import sys; rc = main(); "
                 "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; raise SystemExit(rc)", *argv)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and said.format(**files) in res.stderr and "Traceback" not in res.stderr


def test_a_grid_file_mistake_is_reported_without_importing_tensorflow(tmp_path):
    (tmp_path / "g.yaml").write_text("base: configs/demo.yaml\ngrid:\n  balanse: [none]\n")
    res = python("from fer_keras.grid.__main__ import main; import sys; rc = main(); "
                 "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; raise SystemExit(rc)",
                 tmp_path / "g.yaml")
    assert res.returncode == 2 and "'balanse'" in res.stderr and "did you mean 'balance'" in res.stderr, res.stderr
