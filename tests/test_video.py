"""Videos in fer-predict: rows per face per sampled frame, times, stable face ids, outputs, one-line errors.

Every clip is written here with OpenCV's VideoWriter. The model is a fixed-weight colour classifier
(mean colour -> softmax: red is class 0, green 1, blue 2), and most tests find "faces" with a cheap
detector that boxes saturated squares; one test goes through MTCNN on the astronaut.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from fer_keras.data.faces import Face
from fer_keras.models._head import image_input
from fer_keras.predict import cli, video_cli
from fer_keras.predict.predictor import load_run
from fer_keras.predict.tracker import IoUTracker, iou
from fer_keras.predict.video import predict_video
from fer_keras.predict.video_io import VideoError, diagnose, sampler
from fer_keras.runs import CLASSES_FILE, MODEL_FILE

CLASSES = ["surprise", "angry", "happy"]
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
FPS = 10
SIZE = (160, 96)  # width, height


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    inputs, x = image_input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="colour")
    model.get_layer("predictions").set_weights([20 * np.eye(3, dtype="float32"), np.zeros(3, "float32")])
    run = tmp_path_factory.mktemp("run")
    model.save(run / MODEL_FILE)
    (run / CLASSES_FILE).write_text(json.dumps(CLASSES))
    return run


@pytest.fixture(scope="module")
def predictor(run_dir):
    return load_run(run_dir)


def write_clip(path: Path, frames: list[np.ndarray], fourcc: str = "MJPG", fps: float = FPS) -> Path:
    """RGB frames -> a video file."""
    h, w = frames[0].shape[:2] if frames else SIZE[::-1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def squares(n: int) -> list[np.ndarray]:
    """Grey frames with a red square drifting right (left half) and a still blue one (right half)."""
    out = []
    for i in range(n):
        f = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
        f[30:60, 10 + 2 * i:40 + 2 * i] = RED
        f[30:60, 110:140] = BLUE
        out.append(f)
    return out


def solid(colour, n: int) -> list[np.ndarray]:
    return [np.full((SIZE[1], SIZE[0], 3), colour, np.uint8) for _ in range(n)]


def square_detector(rgb: np.ndarray) -> list[Face]:
    """Boxes around saturated blobs: a stand-in for MTCNN that finds the test squares in microseconds."""
    mask = (rgb.max(axis=2).astype(int) - rgb.min(axis=2) > 100).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [Face(tuple(int(v) for v in stats[i, :4]), 0.99) for i in range(1, n)]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_times_and_stable_face_ids(predictor, tmp_path):
    clip = write_clip(tmp_path / "two.avi", squares(12))
    result = predict_video(predictor, clip, every=2, detector=square_detector, out=tmp_path / "rows.csv")
    s = result.summary
    assert (s.frames_read, s.frames_sampled, s.frames_with_faces, s.faces, s.rows) == (12, 6, 6, 2, 12)
    assert [r.frame for r in result.rows] == [f for f in range(0, 12, 2) for _ in range(2)]
    assert [r.time for r in result.rows] == pytest.approx([r.frame / FPS for r in result.rows])
    assert {r.face for r in result.rows if r.label == "surprise"} == {0}  # red, leftmost at the start
    assert {r.face for r in result.rows if r.label == "happy"} == {1}
    assert [(f["face"], f["first_s"], f["last_s"], f["frames"], f["label"], f["share"]) for f in result.faces()] == [
        (0, 0.0, 1.0, 6, "surprise", 1.0), (1, 0.0, 1.0, 6, "happy", 1.0)]
    table = video_cli.faces_table(result, most=1).splitlines()
    assert len(table) == 4 and table[2].split()[0] == "0" and table[3] == "(and 1 more, each seen in fewer frames)"
    red = [r.box[0] for r in result.rows if r.face == 0]
    assert red == sorted(red) and red[-1] - red[0] >= 16  # it moved, and kept its id
    rows = read_csv(tmp_path / "rows.csv")
    assert len(rows) == 12 and list(rows[0])[:4] == ["source", "frame", "time", "face"]
    assert [float(r["time"]) for r in rows] == pytest.approx([r.time for r in result.rows])
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in CLASSES) == pytest.approx(1, abs=1e-5)
        assert float(r[f"p_{r['label']}"]) == max(float(r[f"p_{c}"]) for c in CLASSES)
    assert s.detect_s > 0 and s.classify_s > 0 and s.wall_s >= s.detect_s + s.classify_s


def test_fps_and_every_sampling():
    by_fps = sampler(None, 4, 10)
    assert [i for i in range(20) if by_fps(i)] == [0, 3, 5, 8, 10, 13, 15, 18]
    assert all(sampler(None, 30, 10)(i) for i in range(20))  # above the video's rate: every frame
    assert [i for i in range(10) if sampler(3, None, 25)(i)] == [0, 3, 6, 9]
    with pytest.raises(ValueError):
        sampler(0, None, 25)


def test_tracker_keeps_ids_through_order_changes_and_drops_long_gaps():
    t = IoUTracker(min_iou=0.3, max_gap_s=1.0)
    a, b = (0, 0, 20, 20), (100, 0, 20, 20)
    assert t.update([a, b], 0.0) == [0, 1]
    assert t.update([(102, 1, 20, 20), (3, 0, 20, 20)], 0.1) == [1, 0]  # listed the other way round
    assert t.update([(3, 0, 20, 20)], 0.5) == [0]  # face 1 missing for a moment ...
    assert t.update([(101, 0, 20, 20)], 1.0) == [1]  # ... and back within max_gap_s
    assert t.update([(60, 50, 20, 20)], 1.1) == [2]  # no overlap: someone new
    assert t.update([(3, 0, 20, 20)], 2.6) == [3]  # face 0 unseen for 2.1 s: a new id
    assert iou(a, a) == 1 and iou(a, b) == 0 and iou(a, (10, 0, 20, 20)) == pytest.approx(1 / 3)


def test_cli_table_plot_and_annotated_video(run_dir, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.avi", solid(RED, 4) + solid(BLUE, 4))
    out = tmp_path / "out" / "clip.json"
    assert cli.main([str(clip), "--run", str(run_dir), "--no-detect", "--fps", "5", "--out", str(out),
                     "--annotate", str(tmp_path / "annotated")]) == 0
    printed = capsys.readouterr().out
    assert "frames: 8 read (0.8 s at 10 fps), 4 sampled, 4 with a face; faces: 1; rows: 4" in printed
    doc = json.loads(out.read_text())
    assert doc["classes"] == CLASSES and doc["summary"]["frames_read"] == 8 and doc["summary"]["error"] is None
    summary, per_frame = doc["summary"], doc["per_sampled_frame"]
    assert per_frame["wall_s"] == pytest.approx(summary["wall_s"] / 4) and summary["frames_sampled"] == 4
    assert [(p["frame"], p["time"], p["face"], p["label"]) for p in doc["predictions"]] == [
        (0, 0.0, 0, "surprise"), (2, 0.2, 0, "surprise"), (4, 0.4, 0, "happy"), (6, 0.6, 0, "happy")]
    assert doc["predictions"][0]["box"] == [0, 0, SIZE[0], SIZE[1]]
    for plot in (out.with_suffix(".png"), out.with_suffix(".pdf")):  # the plot goes beside --out
        assert plot.stat().st_size > 5000
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert out.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    video = cv2.VideoCapture(str(tmp_path / "annotated" / "clip.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    ok, first = video.read()
    assert ok and first.shape == (SIZE[1], SIZE[0], 3)


def test_annotate_names_a_file_or_a_folder(run_dir, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", solid(GREEN, 3))
    for target, written in (("copy.avi", "copy.avi"), ("out", "out/clip.mp4")):
        assert cli.main([str(clip), "--run", str(run_dir), "--no-detect", "--annotate", str(tmp_path / target)]) == 0
        assert (tmp_path / written).is_file()
        assert cv2.VideoCapture(str(tmp_path / written)).get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_real_faces_through_mtcnn(predictor, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    photo = skimage_data.astronaut()[40:296, 100:356]  # 256 x 256 around her face
    frames = [np.ascontiguousarray(np.roll(photo, 8 * i, axis=1)) for i in range(3)]  # panning right
    result = predict_video(predictor, write_clip(tmp_path / "astronaut.mp4", frames, "mp4v"))
    faces = [r for r in result.rows if r.face == 0]
    assert [r.frame for r in faces] == [0, 1, 2] and all(r.face_confidence > 0.95 for r in faces)
    assert [r.box[0] for r in faces] == sorted(r.box[0] for r in faces)  # it follows the pan
    assert faces[2].box[0] - faces[0].box[0] == pytest.approx(16, abs=4)


def test_rows_stay_valid_when_the_run_stops(predictor, tmp_path):
    calls = []

    def failing_detector(rgb):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return square_detector(rgb)

    out = tmp_path / "rows.csv"
    with pytest.raises(KeyboardInterrupt):
        predict_video(predictor, write_clip(tmp_path / "c.avi", squares(8)), detector=failing_detector, out=out)
    rows = read_csv(out)
    assert [int(r["frame"]) for r in rows] == [0, 0, 1, 1, 2, 2] and all(r["p_happy"] for r in rows)


def truncated_avi(tmp_path: Path) -> Path:
    full = write_clip(tmp_path / "full.avi", solid(RED, 20)).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full[:len(full) // 2])
    return cut


def test_truncated_video_keeps_the_rows_read(predictor, run_dir, tmp_path, capsys):
    cut = truncated_avi(tmp_path)
    with pytest.raises(VideoError, match="truncated or damaged") as caught:
        predict_video(predictor, cut, detect_faces=False, out=tmp_path / "part.json")
    read = caught.value.result.summary.frames_read
    assert 0 < read < 20
    doc = json.loads((tmp_path / "part.json").read_text())
    assert len(doc["predictions"]) == read and "truncated" in doc["summary"]["error"]
    out = tmp_path / "part.csv"
    assert cli.main([str(cut), "--run", str(run_dir), "--no-detect", "--out", str(out)]) == 1
    err = capsys.readouterr().err  # the progress bar, then one error line
    assert "Traceback" not in err and err.count("error") == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"fer-predict: error: {cut}: truncated or damaged after frame")
    assert last.endswith(f"the {read} rows of the frames read are in {out}")
    assert [int(r["frame"]) for r in read_csv(out)] == list(range(read))
    assert out.with_suffix(".png").is_file()


def test_bad_videos_fail_in_one_line(run_dir, tmp_path, capsys):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mkv").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    mp4 = write_clip(tmp_path / "full.mp4", solid(RED, 10), "mp4v").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(mp4[:len(mp4) // 2])
    avi = write_clip(tmp_path / "mjpg.avi", solid(RED, 5)).read_bytes()
    (tmp_path / "codec.avi").write_bytes(avi.replace(b"MJPG", b"ZZZZ"))
    write_clip(tmp_path / "zero.avi", [])
    write_clip(tmp_path / "grey.avi", solid((128, 128, 128), 2))
    cases = {
        ("empty.mp4",): "empty file (0 bytes)",
        ("noise.mkv",): "not a video OpenCV can read (unknown or damaged format)",
        ("cut.mp4",): "truncated: the file ends inside its '",
        ("codec.avi",): "no usable codec: OpenCV's FFmpeg cannot decode its 'ZZZZ' video stream (AVI container)",
        ("zero.avi", "--no-detect"): "the video has zero frames",
        ("grey.avi",): "no face found in the 2 sampled frames (for a video of face crops, pass --no-detect)",
        ("grey.avi", "--every", "0"): "--every 0: must be 1 or more",
        ("grey.avi", "--plot", "p.svg"): "p.svg: the file must end in .png",
        ("grey.avi", "--plot", "grey.avi/p.png"): "grey.avi/p.png: cannot write in",
        ("grey.avi", "--annotate", "a.webm"): "a.webm: write a .mp4, .mov, .avi, .mkv file",
    }
    for (name, *flags), message in cases.items():
        flags = [str(tmp_path / f) if f.startswith(("p.", "a.", "grey.avi/")) else f for f in flags]
        assert cli.main([str(tmp_path / name), "--run", str(run_dir), *flags]) == 1, name
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("error") == 1, (name, err)
        last = err.strip().splitlines()[-1]
        assert last.startswith("fer-predict: error: ") and message in last, (name, err)
    photo = tmp_path / "red.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    assert cli.main([str(photo), "--every", "2"]) == 1
    assert "--every, --fps and --plot are for videos" in capsys.readouterr().err


def test_memory_stays_flat(predictor, tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), np.uint8)
    clip = write_clip(tmp_path / "long.avi", [np.roll(base, i, axis=1) for i in range(300)])  # 13.8 MB decoded
    tracemalloc.start()
    try:
        result = predict_video(predictor, clip, every=100, detect_faces=False, annotate=tmp_path / "a.avi")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # A few frames at a time take 1.2 MB; holding all 300 would take 14 MB.
    assert result.summary.frames_read == 300 and peak < 4_000_000


def test_a_bad_video_fails_quietly_before_tensorflow_loads(tmp_path):
    mp4 = write_clip(tmp_path / "full.mp4", solid(RED, 10), "mp4v").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(mp4[:len(mp4) // 2])  # FFmpeg itself prints "moov atom not found"
    code = ("import sys; from fer_keras.predict import cli; rc = cli.main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cut.mp4")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"fer-predict: error: {tmp_path / 'cut.mp4'}: truncated: the file ends "
                                        "inside its 'moov' box"]


def test_diagnose_reads_past_the_first_megabyte(tmp_path):
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (360, 640, 3), np.uint8) for _ in range(30)]
    whole = write_clip(tmp_path / "noise.mp4", noise, "mp4v")
    data = whole.read_bytes()
    assert len(data) > 1.5 * (1 << 20)  # the index (moov) is written last, past the first MB
    (tmp_path / "cut.mp4").write_bytes(data[:data.rfind(b"moov") + 20])  # cut inside the index
    assert diagnose(tmp_path / "cut.mp4") == "truncated: the file ends inside its 'moov' box"
    assert "its 'mp4v' video stream (MP4/MOV container)" in diagnose(whole)  # the video track's codec tag
