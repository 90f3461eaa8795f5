"""Crop geometry with a stubbed detector, rejects, resume, metadata, and real MTCNN."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from data_prep import crop
from data_prep.crop import CropOptions, Face, crop_box, crop_folder


class FixedDetector:
    """Returns the same faces for every image."""

    def __init__(self, faces=((40, 30, 60, 60, 0.99),)):
        self.faces = [Face(tuple(f[:4]), f[4]) for f in faces]
        self.calls = 0

    def __call__(self, rgb):
        self.calls += 1
        return self.faces


class Interrupt(Exception):
    pass


class DyingDetector(FixedDetector):
    """Simulates a crash (Ctrl-C, OOM kill) after ``n`` images."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def __call__(self, rgb):
        if self.calls >= self.n:
            raise Interrupt
        return super().__call__(rgb)


def make_fixed(**kw):  # picklable factory for worker processes
    return FixedDetector()


def gradient(h=150, w=200):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)


def write_images(folder: Path, n: int, size=(200, 150)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(gradient(size[1], size[0])).save(folder / f"img{i:02d}.png")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_crop_box_margin_and_clipping():
    assert crop_box((50, 40, 30, 20), 20, 200, 150) == (30, 20, 100, 80)
    assert crop_box((5, 3, 30, 20), 20, 200, 150) == (0, 0, 55, 43)          # top-left
    assert crop_box((180, 140, 30, 20), 20, 200, 150) == (160, 120, 200, 150)  # bottom-right
    with pytest.raises(ValueError, match="outside"):
        crop_box((300, 300, 10, 10), 0, 200, 150)


def test_crop_pixels_are_box_plus_margin_resized(tmp_path):
    write_images(tmp_path / "src", 1)
    opts = CropOptions(margin=10, size=64, ext=".png")
    s = crop_folder(tmp_path / "src", tmp_path / "dst", opts, detector=FixedDetector(),
                    progress=False)
    assert (s.cropped, s.rejected) == (1, 0)
    out = np.asarray(Image.open(tmp_path / "dst" / "img00.png"))
    assert out.shape == (64, 64, 3)
    want = cv2.resize(gradient()[20:100, 30:110], (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, want)


def test_crop_clips_at_border_and_enlarges(tmp_path):
    write_images(tmp_path / "src", 1)
    det = FixedDetector([(170, 120, 40, 40, 0.99)])  # box runs past the right/bottom edges
    crop_folder(tmp_path / "src", tmp_path / "dst", CropOptions(size=256, ext=".png"),
                detector=det, progress=False)
    out = np.asarray(Image.open(tmp_path / "dst" / "img00.png"))
    want = cv2.resize(gradient()[100:150, 150:200], (256, 256), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out, want)


def test_select_largest_confident_all(tmp_path):
    write_images(tmp_path / "src", 1)
    faces = [(0, 0, 30, 30, 0.999), (100, 50, 60, 60, 0.95)]
    for select, n in (("largest", 1), ("confident", 1), ("all", 2)):
        dst = tmp_path / select
        s = crop_folder(tmp_path / "src", dst, CropOptions(select=select, margin=0, size=32),
                        detector=FixedDetector(faces), progress=False)
        assert s.faces_written == n
    a = np.asarray(Image.open(tmp_path / "largest" / "img00.jpg")).astype(int)
    b = np.asarray(Image.open(tmp_path / "confident" / "img00.jpg")).astype(int)
    assert np.abs(a - b).mean() > 10  # different faces chosen
    assert sorted(p.name for p in (tmp_path / "all").glob("*.jpg")) == [
        "img00_face0.jpg", "img00_face1.jpg"]


def test_no_face_small_face_and_unreadable_are_rejected(tmp_path):
    src = tmp_path / "src"
    write_images(src, 1)
    (src / "empty.jpg").write_bytes(b"")
    opts = CropOptions(min_face=40)
    s = crop_folder(src, tmp_path / "a", opts, detector=FixedDetector([]), progress=False)
    assert (s.cropped, s.rejected) == (0, 2)
    rows = {r["source"]: r["reason"] for r in read_csv(tmp_path / "a" / crop.REJECTS)}
    assert rows["img00.png"] == "no face detected"
    assert "empty file" in rows["empty.jpg"] and "empty.jpg" in rows["empty.jpg"]
    small = FixedDetector([(0, 0, 30, 30, 0.99), (50, 50, 80, 80, 0.5)])
    crop_folder(src, tmp_path / "b", opts, detector=small, progress=False)
    rows = {r["source"]: r["reason"] for r in read_csv(tmp_path / "b" / crop.REJECTS)}
    assert "below min size 40px or confidence 0.9" in rows["img00.png"]


def test_unusual_modes_are_cropped_as_rgb(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("CMYK", (200, 150), (0, 255, 255, 0)).save(src / "cmyk.jpg")
    Image.fromarray(np.full((150, 200), 30000, np.uint16)).save(src / "deep.png")
    Image.new("RGBA", (200, 150), (0, 0, 255, 128)).save(src / "alpha.png")
    Image.new("L", (200, 150), 90).save(src / "gray.png")
    s = crop_folder(src, tmp_path / "dst", CropOptions(ext=".png"), detector=FixedDetector(),
                    progress=False)
    assert (s.cropped, s.rejected) == (4, 0)
    for name in ("cmyk", "deep", "alpha", "gray"):
        out = Image.open(tmp_path / "dst" / f"{name}.png")
        assert (out.mode, out.size) == ("RGB", (256, 256)), name
    assert np.asarray(Image.open(tmp_path / "dst" / "cmyk.png"))[5, 5].tolist() == [255, 0, 0]


def test_resume_after_interruption_never_redoes_images(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_images(src, 7)
    with pytest.raises(Interrupt):
        crop_folder(src, dst, detector=DyingDetector(3), progress=False)
    done = sorted(p.name for p in dst.glob("*.jpg"))
    assert done == ["img00.jpg", "img01.jpg", "img02.jpg"]
    stamps = {n: (dst / n).stat().st_mtime_ns for n in done}
    # A torn manifest line (power cut mid-write) must be cut and that image redone.
    with open(dst / crop.MANIFEST, "a") as f:
        f.write("img03.png,ok,1,img03.j")
    det = FixedDetector()
    s = crop_folder(src, dst, detector=det, progress=False)
    assert (s.skipped, s.cropped, det.calls) == (3, 4, 4)
    assert {n: (dst / n).stat().st_mtime_ns for n in done} == stamps
    assert len(read_csv(dst / crop.MANIFEST)) == 7
    again = FixedDetector()
    assert crop_folder(src, dst, detector=again, progress=False).skipped == 7
    assert again.calls == 0


def test_resume_with_other_settings_or_source_is_refused(tmp_path):
    write_images(tmp_path / "src", 1)
    crop_folder(tmp_path / "src", tmp_path / "dst", detector=FixedDetector(), progress=False)
    with pytest.raises(FileExistsError, match="would mix"):
        crop_folder(tmp_path / "src", tmp_path / "dst", CropOptions(margin=5),
                    detector=FixedDetector(), progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="holds no crop"):
        crop_folder(tmp_path / "src", tmp_path / "other", detector=FixedDetector(),
                    progress=False)


def test_output_has_no_metadata_and_source_untouched(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"            # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSInfo: latitude
    Image.fromarray(gradient()).save(src / "gps.jpg", exif=exif, comment=b"secret")
    before = (src / "gps.jpg").read_bytes()
    crop_folder(src, tmp_path / "dst", detector=FixedDetector(), progress=False)
    assert (src / "gps.jpg").read_bytes() == before
    out = Image.open(tmp_path / "dst" / "gps.jpg")
    assert not out.getexif() and "exif" not in out.info and "comment" not in out.info


def test_exclusions_and_worker_processes(tmp_path):
    src = tmp_path / "src"
    write_images(src / "happy", 6)
    (src / "exclude.txt").write_text("# drawings\nhappy/img01.png\n")
    s = crop_folder(src, tmp_path / "dst", workers=2, detector_factory=make_fixed,
                    progress=False)
    assert (s.total, s.cropped) == (5, 5)
    assert not (tmp_path / "dst" / "happy" / "img01.jpg").exists()


def test_real_mtcnn_finds_the_astronaut(tmp_path):
    data = pytest.importorskip("skimage.data")
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "astronaut.png")
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(src / "blank.png")
    det = crop.MTCNNDetector()
    faces = det(data.astronaut())
    best = max(faces, key=lambda f: f.box[2] * f.box[3])
    x, y, w, h = best.box
    # The face in skimage's astronaut photo lies around x 165-285, y 55-175.
    assert 140 < x < 200 and 30 < y < 90 and 90 < w < 150 and best.confidence > 0.95
    s = crop_folder(src, tmp_path / "dst", detector=det, progress=False)
    assert (s.cropped, s.rejected) == (1, 1)
    assert Image.open(tmp_path / "dst" / "astronaut.jpg").size == (256, 256)
