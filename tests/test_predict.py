"""Inference on a trained run: the Predictor, load_run's files, MTCNN faces and the fer-predict CLI.

The run is a tiny fixed-weight model: mean colour -> Dense(20 * identity) -> softmax, so a red
image is class 0, green class 1, blue class 2 of ``classes.json`` (deliberately not alphabetical).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import fer_keras
from fer_keras.models._head import image_input
from fer_keras.models.preprocessing import Preprocess
from fer_keras.predict import cli, predictor
from fer_keras.predict.predictor import Predictor, load_run
from fer_keras.runs import CLASSES_FILE, MODEL_FILE

CLASSES = ["surprise", "angry", "happy"]
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
REPO = Path(__file__).resolve().parents[1]


def colour_model(res: int = 16) -> keras.Model:
    inputs, x = image_input((res, res, 3))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="colour")
    model.get_layer("predictions").set_weights([20 * np.eye(3, dtype="float32"), np.zeros(3, "float32")])
    return model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    colour_model().save(run / MODEL_FILE)
    (run / CLASSES_FILE).write_text(json.dumps(CLASSES))
    return run


@pytest.fixture(scope="module")
def loaded(run_dir) -> Predictor:
    return load_run(run_dir)


def solid(colour, size=(20, 30)) -> np.ndarray:
    return np.full((*size, 3), colour, np.uint8)


def test_top_level_api_is_lazy():
    code = ("import sys, fer_keras; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "print(fer_keras.__all__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert fer_keras.load_run is load_run
    assert "resnet18" in fer_keras.list_models()
    assert fer_keras.build_model.__module__ == "fer_keras.registry"


def test_predict_arrays_in_the_runs_class_order(loaded):
    assert loaded.classes == tuple(CLASSES) and loaded.res == 16 and loaded.preprocessing == "rescale"
    preds = loaded.predict([solid(RED), solid(GREEN).astype("float32"), solid(BLUE), np.full((16, 16), 90, np.uint8),
                            np.full((16, 16, 1), 90.0)])
    assert [p.source for p in preds] == [f"array[{i}]" for i in range(5)]
    assert [p.label for p in preds[:3]] == CLASSES
    assert all(list(p.probabilities) == CLASSES for p in preds)
    assert preds[0].probability > 0.99 and preds[0].box is None and preds[0].face_confidence is None
    for grey in preds[3:]:  # three equal channels: every class equally likely
        np.testing.assert_allclose(list(grey.probabilities.values()), 1 / 3, atol=1e-5)
    batch = loaded.predict(np.stack([solid(BLUE), solid(RED)]), batch_size=1)
    assert [p.label for p in batch] == ["happy", "surprise"]


def test_predict_paths_and_folders(loaded, tmp_path):
    (tmp_path / "b").mkdir()
    Image.fromarray(solid(GREEN)).save(tmp_path / "b" / "green.png")
    Image.fromarray(solid(RED)).save(tmp_path / "a.jpg")
    Image.fromarray(solid(BLUE)).convert("L").save(tmp_path / "grey.png")
    by_folder = loaded.predict(tmp_path, batch_size=2)
    assert [Path(p.source).name for p in by_folder] == ["a.jpg", "green.png", "grey.png"]
    assert [p.label for p in by_folder[:2]] == ["surprise", "angry"]
    mixed = loaded.predict([tmp_path / "a.jpg", str(tmp_path / "b"), solid(BLUE)])
    assert [p.label for p in mixed] == ["surprise", "angry", "happy"]
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        loaded.predict(tmp_path / "broken.jpg")
    reported = loaded.predict(tmp_path, errors="report")
    assert [p.label for p in reported][:2] == ["surprise", "angry"]
    assert reported[2].label is None and "not a readable image" in reported[2].error
    with pytest.raises(FileNotFoundError, match="no such file"):
        loaded.predict(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="shape"):
        loaded.predict(np.zeros((4, 4, 5)))


def test_bare_keras_file_and_its_class_names(loaded, tmp_path):
    path = loaded.save(tmp_path / "export" / "colour.keras")
    assert json.loads(path.with_suffix(".classes.json").read_text()) == CLASSES
    again = load_run(path)
    assert again.classes == tuple(CLASSES)
    assert again.predict(solid(GREEN))[0].label == "angry"
    path.with_suffix(".classes.json").unlink()
    with pytest.raises(FileNotFoundError, match="colour.classes.json"):
        load_run(path)


def test_runs_saved_with_the_old_custom_layer_still_load(tmp_path):
    inputs = keras.Input((16, 16, 3), name="image")
    x = Preprocess("caffe", name="preprocess")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x)).save(
        tmp_path / MODEL_FILE)
    (tmp_path / CLASSES_FILE).write_text(json.dumps(CLASSES))
    old = load_run(tmp_path)
    assert old.preprocessing == "caffe" and len(old.predict(solid(RED))) == 1


def test_load_run_errors_name_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        load_run(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=f"holds no {MODEL_FILE}"):
        load_run(tmp_path)
    monkeypatch.setattr(predictor, "BUILTIN_MODEL_DIR", tmp_path / "pretrained")
    with pytest.raises(FileNotFoundError, match="no built-in model"):
        load_run()


def test_detect_faces_on_the_astronaut(loaded, tmp_path):
    data = pytest.importorskip("skimage.data")
    photo = data.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    faces = loaded.predict(tmp_path / "astronaut.png", detect_faces=True)
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    # The face in skimage's astronaut photo lies around x 165-285, y 55-175 (test_data_prep_crop).
    assert 140 < x < 200 and 30 < y < 90 and 90 < w < 150 and face.face_confidence > 0.95
    assert face.face == 0 and face.label in CLASSES
    # The crop is the protocol's: box + 20 px margin, resized to 256, then to the model's size.
    x0, y0, x1, y1 = x - 20, y - 20, x + w + 20, y + h + 20
    crop = np.asarray(Image.fromarray(photo[y0:y1, x0:x1]).resize((256, 256), Image.BICUBIC))
    expected = loaded.probabilities(loaded.model_input(crop.astype("float32"))[None])[0]
    np.testing.assert_allclose(list(face.probabilities.values()), expected, atol=0.02)
    assert loaded.predict(np.zeros((64, 64, 3), np.uint8), detect_faces=True)[0].error == "no face found"


def test_cli_reports_and_writes_json(run_dir, tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(solid(RED)).save(photos / "red.png")
    Image.fromarray(solid(BLUE)).save(photos / "sub" / "blue.jpg")
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fer_keras.predict", str(photos), "--run", str(run_dir), "--no-detect",
         "--out", str(out), "--annotate", str(tmp_path / "annotated")],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "red.png" in proc.stdout and "surprise" in proc.stdout
    assert "oneDNN" not in proc.stderr and "Traceback" not in proc.stderr
    result = json.loads(out.read_text())
    assert result["classes"] == CLASSES
    assert [(Path(p["source"]).name, p["label"]) for p in result["predictions"]] == [
        ("red.png", "surprise"), ("blue.jpg", "happy")]
    assert (tmp_path / "annotated" / "red.png").is_file() and (tmp_path / "annotated" / "sub" / "blue.jpg").is_file()


def test_cli_fails_in_one_line(run_dir, tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-m", "fer_keras.predict", str(tmp_path / "missing.jpg")],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1
    missing = tmp_path / "missing.jpg"
    assert proc.stderr.strip().splitlines() == [f"fer-predict: error: {missing}: no such file or folder"]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    Image.fromarray(solid(RED)).save(tmp_path / "red.png")
    (tmp_path / "empty_run").mkdir()
    cases = {
        (str(tmp_path / "broken.jpg"), "--run", str(run_dir)): "broken.jpg: ",
        (str(tmp_path / "red.png"), "--run", str(tmp_path / "empty_run")): f"holds no {MODEL_FILE}",
        (str(tmp_path / "red.png"), "--run", str(run_dir), "--out", "r.txt"): "must end in .csv or .json",
        (str(tmp_path / "red.png"), "--run", str(run_dir)): "no face found (for a face crop, pass --no-detect)",
    }
    for argv, message in cases.items():
        assert cli.main(list(argv)) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fer-predict: error: ") and message in err[0], (argv, err)
    assert cli.main([str(tmp_path / "red.png"), "--run", str(run_dir), "--no-detect",
                     "--out", str(tmp_path / "r.csv")]) == 0
    header, row = (tmp_path / "r.csv").read_text().splitlines()
    assert header.split(",")[-4:] == ["p_surprise", "p_angry", "p_happy", "error"]
    assert row.split(",")[7] == "surprise"
