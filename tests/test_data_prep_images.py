"""Bad and unusual image files: clear errors naming the file, correct conversions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_prep.images import BadImageError, open_rgb, save_clean
from fer_keras.data.exclusions import add_exclusions, read_exclusions, remove_exclusions


def test_zero_byte_truncated_and_garbage_name_the_file(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    for name, why in (("zero.jpg", "empty file"), ("cut.jpg", "truncated"),
                      ("text.png", "not a readable image")):
        with pytest.raises(BadImageError, match=why) as e:
            open_rgb(tmp_path / name)
        assert name in str(e.value)


def test_modes_become_8bit_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")   # red
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "g16.png")
    Image.new("RGBA", (8, 8), (0, 0, 255, 0)).save(tmp_path / "clear.png")   # transparent
    Image.new("L", (8, 8), 77).save(tmp_path / "gray.png")
    Image.new("LA", (8, 8), (0, 255)).save(tmp_path / "la.png")
    # Alpha is dropped, as the training pipeline drops it: a clear pixel keeps its stored colour.
    cases = {"cmyk.jpg": (255, 0, 0), "g16.png": (255, 255, 255),
             "clear.png": (0, 0, 255), "gray.png": (77, 77, 77), "la.png": (0, 0, 0)}
    for name, rgb in cases.items():
        img = open_rgb(tmp_path / name)
        assert img.mode == "RGB", name
        np.testing.assert_allclose(np.asarray(img)[4, 4], rgb, atol=3, err_msg=name)


def test_huge_images_are_capped(tmp_path):
    Image.new("RGB", (2000, 2000), (10, 20, 30)).save(tmp_path / "big.jpg")
    Image.new("L", (2000, 2000), 5).save(tmp_path / "big.png")
    img = open_rgb(tmp_path / "big.jpg", max_pixels=1_000_000)  # JPEG: decoded at 1/2 or 1/4
    assert img.size[0] * img.size[1] <= 1_000_000
    with pytest.raises(BadImageError, match="big.png.*decode cap"):
        open_rgb(tmp_path / "big.png", max_pixels=1_000_000)


def test_save_clean_is_atomic_and_metadata_free(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    img = Image.new("RGB", (8, 8))
    img.info["exif"] = exif.tobytes()
    save_clean(img, tmp_path / "a" / "out.jpg")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out.jpg"]
    assert not Image.open(tmp_path / "a" / "out.jpg").getexif()


def test_exclusion_list_round_trip(tmp_path):
    assert read_exclusions(tmp_path) == set()
    (tmp_path / "exclude.txt").write_text("# manual pass\ntrain/happy/a.jpg\n\n  test/sad/b.png \n")
    assert {p.as_posix() for p in read_exclusions(tmp_path)} == {
        "train/happy/a.jpg", "test/sad/b.png"}
    added = add_exclusions(tmp_path, ["train/happy/a.jpg", tmp_path / "val/fear/c.jpg"], "dup")
    assert [p.as_posix() for p in added] == ["val/fear/c.jpg"]
    assert len(read_exclusions(tmp_path)) == 3
    remove_exclusions(tmp_path, ["test/sad/b.png"])
    assert {p.as_posix() for p in read_exclusions(tmp_path)} == {
        "train/happy/a.jpg", "val/fear/c.jpg"}
    assert "# manual pass" in (tmp_path / "exclude.txt").read_text()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_metadata_free_copy_of_a_turned_photo_is_upright(tmp_path, suffix):
    """The EXIF orientation goes with the EXIF, so a photo stored sideways is copied as the lossless PNG of its
    upright pixels (a JPEG cannot be turned without re-encoding); one stored upright keeps its own bytes."""
    from data_prep.images import clean_copy_suffix, copy_without_metadata

    rgb = np.random.default_rng(3).integers(0, 256, (18, 24, 3), np.uint8)
    for k in range(1, 9):
        src = tmp_path / f"o{k}{suffix}"
        exif = Image.Exif()
        exif[0x0112] = k
        Image.fromarray(rgb).save(src, exif=exif)
        out = copy_without_metadata(src, tmp_path / "out" / src.name)
        assert out.suffix == clean_copy_suffix(src) == (suffix if k == 1 else ".png"), k
        with Image.open(out) as copy:
            assert 0x0112 not in copy.getexif(), k
            assert np.array_equal(np.asarray(copy.convert("RGB")), np.asarray(open_rgb(src))), k
