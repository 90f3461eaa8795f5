"""Every importer on a tiny input written here in the dataset's real format, plus bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_prep.images import BadImageError
from data_prep.importers import (
    IMPORTERS,
    affectnet,
    ckplus,
    fer2013_csv,
    ferplus,
    folders,
    jaffe,
    rafdb,
)
from data_prep.importers.__main__ import main as import_main
from data_prep.importers.common import ImportFormatError
from data_prep.layout import scan
from fer_keras.data.readers import DatasetError
from fer_keras.labels import UnknownClassError


def counts(root):
    out = {}
    for it in scan(root):
        out[(it.split, it.label)] = out.get((it.split, it.label), 0) + 1
    return out


def pixels(seed):
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, 48 * 48)))


def img(path, size=(20, 20), mode="RGB", color=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def write_fer_csv(path, rows):
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows))
    return path


def test_fer2013_csv(tmp_path, capsys):
    src = write_fer_csv(tmp_path / "fer2013.csv", [
        (0, pixels(0), "Training"), (3, pixels(1), "Training"), (6, pixels(2), "PublicTest"),
        (1, pixels(3), "PrivateTest")])
    before = src.read_bytes()
    assert import_main(["fer2013_csv", "--src", str(src), "--dst", str(tmp_path / "out")]) == 0
    assert counts(tmp_path / "out") == {("train", "angry"): 1, ("train", "happy"): 1,
                                        ("val", "neutral"): 1, ("test", "disgust"): 1}
    a = np.asarray(Image.open(tmp_path / "out/train/happy/Training_00001.png"))
    np.testing.assert_array_equal(a.ravel(), np.array(pixels(1).split(), int))
    assert "total" in capsys.readouterr().out
    assert src.read_bytes() == before


@pytest.mark.parametrize("header,rows,match", [
    ("emotion,pixel,Usage", [], r"missing column\(s\) \['pixels'\]"),
    (None, [(0, pixels(0), "Training"), (0, "1 2 3", "Training")],
     r"row 1 \(line 3\): 3 pixel values, expected 2304"),
    (None, [(0, pixels(0)[:-1] + "x", "Training")], r"row 0 \(line 2\): pixels contain"),
    (None, [(9, pixels(0), "Training")], r"row 0 \(line 2\): unknown emotion code '9'"),
    (None, [(0, pixels(0), "Training"), (0, "", "Training")], r"row 1 \(line 3\): 0 pixel values"),
    (None, [(0, pixels(0), "Train")], r"unknown Usage 'Train'"),
])
def test_fer2013_csv_bad_input(tmp_path, header, rows, match):
    src = tmp_path / "f.csv"
    if header:
        src.write_text(header + "\n0,1,Training\n")
    else:
        write_fer_csv(src, rows)
    with pytest.raises(DatasetError, match=match):  # the trainer's parser and messages
        fer2013_csv.run(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # validated before anything is written


def test_ferplus_votes_ties_and_drops(tmp_path):
    fer = write_fer_csv(tmp_path / "fer2013.csv",
                        [(0, pixels(i), u) for i, u in enumerate(
                            ["Training"] * 4 + ["PublicTest", "PrivateTest", "Training"])])
    head = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
            "unknown,NF\n")
    rows = ["Training,fer0000000.png,0,10,0,0,0,0,0,0,0,0",   # happy
            "Training,fer0000001.png,4,0,0,4,2,0,0,0,0,0",    # tie neutral/sadness
            "Training,fer0000002.png,1,0,0,0,0,0,0,0,6,3",    # unknown wins
            "Training,,5,0,0,0,0,0,0,0,0,0",                  # removed by FER+
            "PublicTest,fer0000004.png,2,0,0,0,0,0,0,8,0,0",  # contempt
            "PrivateTest,fer0000005.png,3,0,6,0,1,0,0,0,0,0",  # surprise
            "Training,fer0000006.png,0,0,0,0,5,0,0,0,0,5"]    # anger ties NF
    labels = tmp_path / "fer2013new.csv"
    labels.write_text(head + "\n".join(rows) + "\n")
    w = ferplus.run(labels, tmp_path / "a", fer2013=fer)
    assert counts(tmp_path / "a") == {("train", "happy"): 1, ("test", "surprise"): 1}
    assert w.dropped == {"tie": 1, "majority unknown/NF": 2, "contempt": 1,
                         "removed by FER+ (no image name)": 1}
    ferplus.run(labels, tmp_path / "b", fer2013=fer, ties="first", contempt=True)
    assert counts(tmp_path / "b") == {("train", "happy"): 1, ("train", "neutral"): 1,
                                      ("val", "contempt"): 1, ("test", "surprise"): 1}
    assert ferplus.vote(np.array([6, 4, 0, 0, 0, 0, 0, 0, 0, 0]), min_share=0.5) == (
        "neutral", "")
    assert ferplus.vote(np.array([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]), ties="first") == (
        "neutral", "")
    labels.write_text(head + rows[0].replace(",10,", ",ten,") + "\n")
    with pytest.raises(ImportFormatError, match=r"row 0 \(line 2\): vote column 'happiness'"):
        ferplus.run(labels, tmp_path / "c", fer2013=fer)


def test_ferplus_from_image_folders(tmp_path):
    labels = tmp_path / "fer2013new.csv"
    labels.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,"
                      "contempt,unknown,NF\nTraining,fer0000000.png,0,0,9,0,0,0,0,0,1,0\n")
    img(tmp_path / "imgs/FER2013Train/fer0000000.png", mode="L")
    ferplus.run(labels, tmp_path / "out", images=tmp_path / "imgs")
    assert counts(tmp_path / "out") == {("train", "surprise"): 1}


def make_rafdb(root, lines, variant="aligned"):
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel/list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        name = line.split()[0]
        stem = name.rsplit(".", 1)[0]
        img(root / "Image/aligned" / f"{stem}_aligned.jpg", (100, 100))
    return root


def assert_bad_image_named_or_skipped(run, src, tmp_path, match: str) -> None:
    """One bad image stops the import with its name, or with skip_bad is dropped and counted."""
    with pytest.raises(BadImageError, match=match):
        run(src, tmp_path / "stopped")
    assert run(src, tmp_path / "skipped", skip_bad=True).dropped == {"bad or missing image": 1}


def test_rafdb(tmp_path):
    src = make_rafdb(tmp_path / "raf", ["train_00001.jpg 1", "train_00002.jpg 4",
                                        "test_0001.jpg 7", "test_0002.jpg 6"])
    rafdb.run(src, tmp_path / "out")
    assert counts(tmp_path / "out") == {("train", "surprise"): 1, ("train", "happy"): 1,
                                        ("test", "neutral"): 1, ("test", "angry"): 1}
    bad = make_rafdb(tmp_path / "r2", ["train_00001.jpg 1", "train_00002.jpg 8"])
    with pytest.raises(ImportFormatError, match=r"line 2: unknown label code 8"):
        rafdb.run(bad, tmp_path / "o2")
    bad = make_rafdb(tmp_path / "r3", ["val_00001.jpg 1"])
    with pytest.raises(ImportFormatError, match="neither train_ nor test_"):
        rafdb.run(bad, tmp_path / "o3")
    src4 = make_rafdb(tmp_path / "r4", ["train_00001.jpg 1", "train_00002.jpg 2"])
    (src4 / "Image/aligned/train_00002_aligned.jpg").unlink()
    assert_bad_image_named_or_skipped(rafdb.run, src4, tmp_path, "train_00002_aligned.jpg.*does not exist")


def test_affectnet(tmp_path):
    src = tmp_path / "an"
    head = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
            "expression,valence,arousal\n")
    train = [("1/a.jpg", 0), ("1/b.jpg", 1), ("2/c.png", 7), ("2/d.jpg", 8), ("2/e.jpg", 10)]
    val = [("3/f.jpg", 6), ("3/g.jpg", 9)]
    for name, rows in (("training.csv", train), ("validation.csv", val)):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(head + "".join(
            f'{p},2,2,10,10,"1;2",{c},0.1,0.2\n' for p, c in rows))
        for p, _ in rows:
            img(src / "Manually_Annotated_Images" / p, (30, 30))
    w = affectnet.run(src, tmp_path / "out")
    assert counts(tmp_path / "out") == {("train", "neutral"): 1, ("train", "happy"): 1,
                                        ("val", "angry"): 1}
    assert w.dropped["contempt"] == 1 and sum(w.dropped.values()) == 4
    affectnet.run(src, tmp_path / "o2", contempt=True, val_split="test", crop_box=True)
    assert counts(tmp_path / "o2")[("train", "contempt")] == 1
    assert Image.open(tmp_path / "o2/test/angry/3_f.png").size == (10, 10)
    (src / "validation.csv").write_text(head + '3/f.jpg,2,2,10,10,"",11,0,0\n')
    with pytest.raises(ImportFormatError, match=r"validation.csv: row 0 \(line 2\): unknown "
                                                r"expression code 11"):
        affectnet.run(src, tmp_path / "o3")


def test_ckplus_last_frames_and_neutral(tmp_path):
    src = tmp_path / "ck"
    sequences = (("S005", "001", 3, 6), ("S010", "002", 2, 5), ("S011", "001", None, 4))
    for subj, seq, code, n in sequences:
        for i in range(1, n + 1):
            img(src / "cohn-kanade-images" / subj / seq / f"{subj}_{seq}_{i:08d}.png", mode="L")
        if code is not None:
            f = src / "Emotion" / subj / seq / f"{subj}_{seq}_{n:08d}_emotion.txt"
            f.parent.mkdir(parents=True)
            f.write_text(f"   {code:.7e}\n")
    w = ckplus.run(src, tmp_path / "out", last_n=2)
    assert counts(tmp_path / "out") == {("train", "disgust"): 2, ("train", "neutral"): 2}
    assert w.dropped == {"contempt": 1}
    assert (tmp_path / "out/train/disgust/S005_001_00000006.png").exists()
    assert (tmp_path / "out/train/neutral/S005_001_00000001.png").exists()
    ckplus.run(src, tmp_path / "o2", last_n=3, neutral=False, contempt=True, split="test")
    assert counts(tmp_path / "o2") == {("test", "disgust"): 3, ("test", "contempt"): 3}
    (src / "Emotion/S005/001/S005_001_00000006_emotion.txt").write_text("9.0\n")
    with pytest.raises(ImportFormatError, match="S005_001_00000006_emotion.txt: unknown emotion"):
        ckplus.run(src, tmp_path / "o3")


def test_jaffe_names_and_tiff(tmp_path):
    src = tmp_path / "jaffe"
    for name in ("KA.AN1.39.tiff", "KA.NE2.27.tiff", "NA.SU1.79.tiff", "YM.FE3.67.tiff"):
        img(src / name, (64, 64), mode="L")
    (src / "README").write_text("not an image")
    jaffe.run(src, tmp_path / "out")
    assert counts(tmp_path / "out") == {("test", "angry"): 1, ("test", "neutral"): 1,
                                        ("test", "surprise"): 1, ("test", "fear"): 1}
    assert (tmp_path / "out/test/angry/KA.AN1.39.png").exists()  # TIFF re-encoded
    img(src / "KA.XX1.40.tiff", mode="L")
    with pytest.raises(ImportFormatError, match=r"KA.XX1.40.tiff: unknown expression code 'XX'"):
        jaffe.run(src, tmp_path / "o2")


def test_folders_aliases_modes_and_splits(tmp_path):
    src = tmp_path / "kaggle"
    img(src / "Training/Happiness/a.jpg")
    img(src / "Training/3_angry/b.png", mode="RGBA", color=(255, 0, 0, 0))
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(src / "Training/3_angry/cmyk.jpg")
    (src / "testing/Sadness").mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(src / "testing/Sadness/deep.png")
    img(src / "testing/surprised/d.jpg")
    (src / "testing/surprised/notes.txt").write_text("x")
    w = folders.run(src, tmp_path / "out")
    assert counts(tmp_path / "out") == {("train", "happy"): 1, ("train", "angry"): 2,
                                        ("test", "sad"): 1, ("test", "surprise"): 1}
    assert Image.open(tmp_path / "out/train/angry/b.png").mode == "RGB"  # alpha flattened
    assert Image.open(tmp_path / "out/train/angry/cmyk.png").mode == "RGB"
    assert Image.open(tmp_path / "out/test/sad/deep.png").mode == "RGB"
    assert "total" in w.report()
    flat = tmp_path / "flat"
    img(flat / "Neutral/x.bmp")
    folders.run(flat, tmp_path / "o2", split="val")
    assert counts(tmp_path / "o2") == {("val", "neutral"): 1}
    img(flat / "Smirk/y.png")
    with pytest.raises(UnknownClassError, match="Smirk"):
        folders.run(flat, tmp_path / "o3")


def test_folders_bad_images_named_or_skipped(tmp_path):
    src = tmp_path / "k"
    img(src / "happy/ok.jpg")
    (src / "happy/zero.jpg").write_bytes(b"")
    assert_bad_image_named_or_skipped(folders.run, src, tmp_path, "zero.jpg: empty file")


def test_output_folder_guard(tmp_path):
    src = tmp_path / "k"
    img(src / "happy/a.jpg")
    folders.run(src, tmp_path / "out")
    with pytest.raises(FileExistsError, match="already holds 'folders'.*--force"):
        folders.run(src, tmp_path / "out")
    folders.run(src, tmp_path / "out", force=True)
    fer = write_fer_csv(tmp_path / "f.csv", [(0, pixels(0), "Training")])
    with pytest.raises(FileExistsError, match="already holds dataset 'folders'"):
        fer2013_csv.run(fer, tmp_path / "out", force=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not written by a data_prep importer"):
        fer2013_csv.run(fer, tmp_path / "other")


def test_every_importer_has_a_cli():
    assert set(IMPORTERS) == {"fer2013_csv", "ferplus", "rafdb", "affectnet", "ckplus", "jaffe",
                              "folders"}
