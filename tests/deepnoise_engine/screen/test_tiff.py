"""TIFF layout: screen.csv plus one multi-page or C x H x W TIFF per site."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile

from deepnoise_engine.screen import open_screen, verify_images
from deepnoise_engine.screen.errors import BadRowError, LabelFormError, MissingImageError
from deepnoise_engine.screen.images import read_site

SCREEN_CSV = """experiment,plate,well,well_type,sirna
RPE-01,1,A01,treatment,3
RPE-01,1,A02,treatment,4
RPE-01,1,B01,negative_control,9
RPE-02,1,A01,treatment,
RPE-02,1,A02,positive_control,8
"""


def _pixels(seed: int, channels: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (channels, 6, 5), dtype=np.uint8)


def write_tiff(path: Path, pixels: np.ndarray, *, pages: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if pages:  # one page per channel, as microscopes often write them
        with tifffile.TiffWriter(path) as writer:
            for plane in pixels:
                writer.write(plane, contiguous=False)
    else:
        tifffile.imwrite(path, pixels)


def make_tiff_screen(
    root: Path, *, images_dir: str = "", pages: bool = False, csv: str = SCREEN_CSV
) -> dict[str, np.ndarray]:
    """Writes the screen; returns the pixels written by site id."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "screen.csv").write_text(csv)
    written = {}
    seed = 0
    for split, exp, wells in [
        ("train", "RPE-01", ["A01", "A02", "B01"]),
        ("test", "RPE-02", ["A01", "A02"]),
    ]:
        for well in wells:
            for site in (1, 2):
                seed += 1
                pixels = _pixels(seed)
                path = root / images_dir / split / exp / "Plate1" / f"{well}_s{site}.tif"
                write_tiff(path, pixels, pages=pages)
                written[f"{exp}_1_{well}_{site}"] = pixels
    return written


@pytest.mark.parametrize(("pages", "images_dir"), [(False, ""), (True, "images")])
def test_tiff_screen_reads(tmp_path: Path, pages: bool, images_dir: str) -> None:
    written = make_tiff_screen(tmp_path / "t", pages=pages, images_dir=images_dir)
    screen = open_screen(tmp_path / "t")
    assert screen.layout == "tiff" and screen.problems == []
    assert screen.channels == [1, 2, 3, 4] and screen.image_size == (6, 5)
    # no split column: labelled treatments make RPE-01 a training experiment
    assert screen.experiments["RPE-01"].split == "train"
    assert screen.experiments["RPE-02"].split == "test"
    assert screen.experiments["RPE-01"].cell_type == "RPE"
    assert screen.plate("RPE-01", 1).format.well_count == 96
    assert screen.plate("RPE-02", 1).wells["A02"].sirna == "8"
    assert screen.classes() == ["3", "4", "8", "9"]
    for _, _, well in screen.wells():
        for site in well.sites:
            np.testing.assert_array_equal(read_site(site, screen.channels), written[site.site_id])
            np.testing.assert_array_equal(read_site(site, [2]), written[site.site_id][[1]])
    assert verify_images(screen) == []


def test_tiff_problems(tmp_path: Path) -> None:
    make_tiff_screen(tmp_path / "t")
    folder = tmp_path / "t" / "train" / "RPE-01" / "Plate1"
    (folder / "A02_s2.tif").unlink()
    write_tiff(folder / "B01_s1.tif", _pixels(99, channels=2), pages=True)  # 2 of 4 channels
    tifffile.imwrite(folder / "A01_s2.tif", _pixels(98).astype(np.uint16))
    (folder / "B01_s2.tif").write_bytes(b"II*\x00garbage")
    screen = open_screen(tmp_path / "t")
    assert [(p.kind, p.site_id) for p in screen.problems] == [("missing_image", "RPE-01_1_A02_2")]
    found = verify_images(screen)
    assert Counter((p.kind, p.site_id) for p in found) == {
        ("wrong_dtype", "RPE-01_1_A01_2"): 1,
        ("missing_channel", "RPE-01_1_B01_1"): 1,
        ("corrupt_image", "RPE-01_1_B01_2"): 1,
    }
    assert all(Path(p.file).parent == folder for p in found)
    with pytest.raises(MissingImageError, match="A02_s2"):
        open_screen(tmp_path / "t", strict=True)


def test_screen_csv_bad_rows_and_split_column(tmp_path: Path) -> None:
    csv = (
        "experiment,plate,well,split,sirna,cell_type\n"
        "RPE-01,1,A01,train,3,retina\n"
        "RPE-01,1,A02,validation,4,retina\n"
        "RPE-01,1,A03,train,four,retina\n"
        "RPE-02,1,A01,test,5,retina\n"
        "RPE-02,1,A01,test,6,retina\n"
    )
    make_tiff_screen(tmp_path / "t", csv=csv)
    screen = open_screen(tmp_path / "t")
    csv_problems = [(p.kind, p.row) for p in screen.problems if p.row is not None]
    assert csv_problems == [("bad_row", 3), ("unknown_label_form", 4), ("duplicate_id", 6)]
    assert screen.experiments["RPE-01"].cell_type == "retina"
    assert screen.plate("RPE-02", 1).wells["A01"].sirna is None  # test treatment
    with pytest.raises(BadRowError, match="row 3: split 'validation'"):
        open_screen(tmp_path / "t", strict=True)
    (tmp_path / "t" / "screen.csv").write_text(csv.replace("validation", "train"))
    with pytest.raises(LabelFormError, match="row 4"):
        open_screen(tmp_path / "t", strict=True)
