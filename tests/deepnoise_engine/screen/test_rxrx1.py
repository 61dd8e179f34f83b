"""RxRx1 reader: the real sample, hand-written screens, and every kind of bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepnoise_engine.contract import Reporter
from deepnoise_engine.screen import open_screen, verify_images
from deepnoise_engine.screen.errors import (
    BadRowError,
    BadWellError,
    CorruptImageError,
    DuplicateIdError,
    LabelFormError,
    MetadataError,
    MissingChannelError,
    MissingColumnError,
    MissingImageError,
    PlateOutOfRangeError,
)
from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.model import Screen, WellType

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"

TRAIN = """id_code,experiment,plate,well,sirna
HEPG2-01_1_B03,HEPG2-01,1,B03,5
HEPG2-01_1_B04,HEPG2-01,1,B04,7
HEPG2-01_2_B03,HEPG2-01,2,B03,7
"""
TRAIN_CONTROLS = """id_code,experiment,plate,well,sirna,well_type
HEPG2-01_1_B02,HEPG2-01,1,B02,1138,negative_control
HEPG2-01_1_C03,HEPG2-01,1,C03,1108,positive_control
"""
TEST = """id_code,experiment,plate,well
U2OS-01_1_B03,U2OS-01,1,B03
"""
TEST_CONTROLS = """id_code,experiment,plate,well,sirna,well_type
U2OS-01_1_B02,U2OS-01,1,B02,1138,negative_control
"""
WELLS = {  # (split, experiment, plate) -> wells with images
    ("train", "HEPG2-01", 1): ["B02", "B03", "B04", "C03"],
    ("train", "HEPG2-01", 2): ["B03"],
    ("test", "U2OS-01", 1): ["B02", "B03"],
}


def write_png(path: Path, seed: int, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_screen(
    root: Path, *, images_dir: str = "", channels: int = 3, sites: int = 2, **csvs: str
) -> Path:
    """A tiny Kaggle-layout screen; keyword CSV texts replace the defaults (None: omit)."""
    texts = {
        "train": TRAIN,
        "train_controls": TRAIN_CONTROLS,
        "test": TEST,
        "test_controls": TEST_CONTROLS,
        **csvs,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        if text is not None:
            (root / f"{name}.csv").write_text(text)
    seed = 0
    for (split, exp, plate), wells in WELLS.items():
        folder = root / images_dir / split / exp / f"Plate{plate}"
        for well in wells:
            for s in range(1, sites + 1):
                for c in range(1, channels + 1):
                    seed += 1
                    write_png(folder / f"{well}_s{s}_w{c}.png", seed)
    return root


def kinds(screen: Screen) -> Counter[str]:
    return Counter(p.kind for p in screen.problems)


# -- a good screen ------------------------------------------------------------------------
@pytest.mark.parametrize("images_dir", ["", "images"])
def test_small_screen_reads_everything(tmp_path: Path, images_dir: str) -> None:
    screen = open_screen(make_screen(tmp_path / "s", images_dir=images_dir))
    assert screen.problems == []
    assert screen.layout == "rxrx1" and screen.channels == [1, 2, 3]
    assert screen.image_size == (8, 8)
    assert list(screen.experiments) == ["HEPG2-01", "U2OS-01"]
    hepg2, u2os = screen.experiments["HEPG2-01"], screen.experiments["U2OS-01"]
    assert (hepg2.cell_type, hepg2.split, hepg2.batch, hepg2.labelled) == (
        "HEPG2",
        "train",
        "HEPG2-01",
        True,
    )
    assert (u2os.cell_type, u2os.split, u2os.labelled) == ("U2OS", "test", False)
    plate = screen.plate("HEPG2-01", 1)
    assert plate.format.well_count == 96  # the smallest format holding B02..C03
    assert plate.well_counts() == {
        "treatment": 2,
        "positive_control": 1,
        "negative_control": 1,
        "empty": 0,
    }
    assert plate.wells["B03"].sirna == "5" and plate.wells["B03"].source == "train.csv:2"
    assert plate.wells["B02"].well_type == WellType.NEGATIVE_CONTROL
    assert screen.plate("U2OS-01", 1).wells["B03"].sirna is None  # test treatment
    assert screen.plate("U2OS-01", 1).wells["B02"].sirna == "1138"  # test controls labelled
    assert screen.classes() == ["5", "7", "1108", "1138"]
    assert screen.site_count() == 14
    well = plate.wells["C03"]
    assert [s.site_id for s in well.sites] == ["HEPG2-01_1_C03_1", "HEPG2-01_1_C03_2"]
    pixels = read_site(well.sites[1], screen.channels)
    assert pixels.shape == (3, 8, 8) and pixels.dtype == np.uint8
    expected = np.asarray(Image.open(well.sites[1].channels[2]))
    np.testing.assert_array_equal(pixels[1], expected)
    assert verify_images(screen) == []


def test_channels_and_sites_come_from_the_files(tmp_path: Path) -> None:
    screen = open_screen(make_screen(tmp_path / "s", channels=5, sites=3))
    assert screen.channels == [1, 2, 3, 4, 5]
    assert [s.index for s in screen.plate("HEPG2-01", 1).wells["B02"].sites] == [1, 2, 3]
    assert screen.problems == []


def test_labels_as_sirna_strings_and_plate_format(tmp_path: Path) -> None:
    train = TRAIN.replace(",5\n", ",sirna_250\n").replace(",7\n", ",sirna_12\n")
    root = make_screen(tmp_path / "s", train=train)
    screen = open_screen(root)
    assert screen.problems == []
    assert screen.plate("HEPG2-01", 1).wells["B03"].sirna == "sirna_250"
    assert screen.classes() == ["1108", "1138", "sirna_12", "sirna_250"]
    assert open_screen(root, plate_format=384).plate("HEPG2-01", 1).format.well_count == 384
    big = make_screen(tmp_path / "big", train=TRAIN + "HEPG2-01_2_P24,HEPG2-01,2,P24,9\n")
    assert open_screen(big).plate("HEPG2-01", 1).format.well_count == 384
    huge = make_screen(tmp_path / "huge", train=TRAIN + "HEPG2-01_2_AF48,HEPG2-01,2,AF48,9\n")
    assert open_screen(huge).plate("HEPG2-01", 2).format.well_count == 1536


def test_metadata_csv_schema(tmp_path: Path) -> None:
    header = "site_id,well_id,cell_type,dataset,experiment,plate,well,site,well_type,sirna,sirna_id"
    rows = [
        "HEPG2-01_1_B02_1,HEPG2-01_1_B02,HepG2,train,HEPG2-01,1,B02,1,negative_control,EMPTY,1138",
        "HEPG2-01_1_B02_2,HEPG2-01_1_B02,HepG2,train,HEPG2-01,1,B02,2,negative_control,EMPTY,1138",
        "HEPG2-01_1_B03_1,HEPG2-01_1_B03,HepG2,train,HEPG2-01,1,B03,1,treatment,s1,5",
        "HEPG2-01_1_B03_1,HEPG2-01_1_B03,HepG2,train,HEPG2-01,1,B03,1,treatment,s1,5",
        "HEPG2-01_1_B03_2,HEPG2-01_1_B03,HepG2,train,HEPG2-01,1,B03,2,treatment,s1,6",
        "U2OS-01_1_B03_1,U2OS-01_1_B03,U2OS,test,U2OS-01,1,B03,1,treatment,s2,9",
    ]
    root = make_screen(
        tmp_path / "s", train=None, train_controls=None, test=None, test_controls=None
    )
    (root / "metadata.csv").write_text("\n".join([header, *rows]) + "\n")
    screen = open_screen(root)
    exp = screen.experiments["HEPG2-01"]
    assert exp.cell_type == "HepG2"  # from the column, not the prefix
    assert exp.plates[1].wells["B03"].sirna == "5"
    assert screen.experiments["U2OS-01"].plates[1].wells["B03"].sirna is None
    problems = {(p.kind, p.row) for p in screen.problems}
    assert ("duplicate_id", 5) in problems  # the repeated site row
    assert ("bad_row", 6) in problems  # same well, other label
    assert Counter(p.kind for p in screen.problems) == {"duplicate_id": 1, "bad_row": 1}


# -- the real RxRx1 sample ----------------------------------------------------------------
@pytest.fixture(scope="module")
def sample() -> Screen:
    if not (SAMPLE / "train.csv").is_file():
        pytest.skip(f"RxRx1 sample not found at {SAMPLE.resolve()}")
    return open_screen(SAMPLE)


def test_real_sample_metadata(sample: Screen) -> None:
    assert sample.layout == "rxrx1"
    assert len(sample.experiments) == 51
    splits = Counter(e.split for e in sample.experiments.values())
    assert splits == {"train": 33, "test": 18}
    assert sample.cell_types() == ["HEPG2", "HUVEC", "RPE", "U2OS"]
    wells = list(sample.wells())
    assert len(wells) == 36515 + 19897 + 4097 + 2246
    train_treatments = [
        w for e, _, w in wells if e.split == "train" and w.well_type == WellType.TREATMENT
    ]
    assert len(train_treatments) == 36515
    assert all(
        w.sirna is None
        for e, _, w in wells
        if e.split == "test" and w.well_type == WellType.TREATMENT
    )
    assert len(sample.classes()) == 1139
    assert {p.format.well_count for p in sample.plates()} == {384}
    assert sample.channels == [1, 2, 3, 4, 5, 6] and sample.image_size == (512, 512)


def test_real_sample_images_and_missing_sites(sample: Screen) -> None:
    by_kind = Counter(p.kind for p in sample.problems)
    # 18 B02 wells have images: site 1 complete, site 2 without w5/w6; the rest are absent
    assert by_kind["missing_channel"] == 18
    assert by_kind["missing_image"] == sample.site_count() - 36
    assert set(by_kind) == {"missing_channel", "missing_image"}
    well = sample.plate("HEPG2-01", 1).wells["B02"]
    site1, site2 = well.sites
    pixels = read_site(site1, sample.channels)
    assert pixels.shape == (6, 512, 512) and pixels.dtype == np.uint8
    assert site1.ok and not site2.ok
    assert site2.problems[0].kind == "missing_channel"
    assert "w5, w6" in site2.problems[0].message
    with pytest.raises(MissingChannelError, match=r"\[5, 6\]"):
        read_site(site2, sample.channels)
    # wells without any image stay in the model, flagged
    b03 = sample.plate("HEPG2-01", 1).wells["B03"]
    assert b03.sirna == "513" and not b03.usable_sites
    assert b03.sites[0].problems[0].kind == "missing_image"
    assert "train.csv:2" in b03.sites[0].problems[0].message


def test_real_sample_verify(sample: Screen) -> None:
    before = len(sample.problems)
    seen: list[int] = []
    report = Reporter(lambda event: seen.append(event["total"]))
    assert verify_images(sample, report, workers=2) == []
    assert len(sample.problems) == before and seen and seen[-1] == 36


# -- bad input ----------------------------------------------------------------------------
BAD_CASES = [
    # (csv name, text, kind, line, error class)
    (
        "train",
        TRAIN.replace("id_code,experiment,plate,well", "id_code,experiment,well"),
        "missing_column",
        1,
        MissingColumnError,
    ),
    ("train", TRAIN + "HEPG2-01_1_Z99,HEPG2-01,1,Z99,8\n", "bad_well", 5, BadWellError),
    ("train", TRAIN + "HEPG2-01_1_B00,HEPG2-01,1,B00,8\n", "bad_well", 5, BadWellError),
    ("train", TRAIN + "HEPG2-01_1_B03,HEPG2-01,1,B03,8\n", "duplicate_id", 5, DuplicateIdError),
    (
        "train",
        TRAIN + "HEPG2-01_0_B05,HEPG2-01,0,B05,8\n",
        "plate_out_of_range",
        5,
        PlateOutOfRangeError,
    ),
    (
        "train",
        TRAIN + "HEPG2-01_1_B05,HEPG2-01,1,B05,siRNA-8\n",
        "unknown_label_form",
        5,
        LabelFormError,
    ),
    ("train", TRAIN + "HEPG2-01_1_B05,HEPG2-01,one,B05,8\n", "bad_row", 5, BadRowError),
    ("train", TRAIN + "HEPG2-01_1_B05,HEPG2-01,1,B05\n", "bad_row", 5, BadRowError),
    ("train", TRAIN + "HEPG2-01_1_B06,HEPG2-01,1,B05,8\n", "bad_row", 5, BadRowError),
    (
        "train_controls",
        TRAIN_CONTROLS + "HEPG2-01_1_D04,HEPG2-01,1,D04,1109,control\n",
        "bad_row",
        4,
        BadRowError,
    ),
    ("train", "", "metadata_error", None, MetadataError),
    ("train", TRAIN + "\n\n", None, None, None),  # trailing blank lines are fine
]


@pytest.mark.parametrize(("csv_name", "text", "kind", "line", "error"), BAD_CASES)
def test_bad_metadata(
    tmp_path: Path,
    csv_name: str,
    text: str,
    kind: str | None,
    line: int | None,
    error: type[Exception] | None,
) -> None:
    root = make_screen(tmp_path / "s", **{csv_name: text})
    screen = open_screen(root)
    if kind is None:
        assert screen.problems == []
        return
    assert [p.kind for p in screen.problems] == [kind]
    problem = screen.problems[0]
    assert problem.file == str(root / f"{csv_name}.csv") and problem.row == line
    # the rest of the screen is still there
    assert "U2OS-01" in screen.experiments
    assert screen.plate("HEPG2-01", 1).wells["B02"].well_type == WellType.NEGATIVE_CONTROL
    with pytest.raises(error) as info:
        open_screen(root, strict=True)
    assert f"{csv_name}.csv" in str(info.value)
    if line is not None:
        assert f"row {line}" in str(info.value)


def test_non_strict_collects_every_problem_and_keeps_good_rows(tmp_path: Path) -> None:
    train = TRAIN + (
        "HEPG2-01_1_Z99,HEPG2-01,1,Z99,8\n"
        "HEPG2-01_1_B03,HEPG2-01,1,B03,8\n"
        "HEPG2-01_-1_B05,HEPG2-01,-1,B05,8\n"
        "HEPG2-01_2_B05,HEPG2-01,2,B05,x8\n"
        "HEPG2-01_2_B06,HEPG2-01,2,B06,11\n"
        "HEPG2-01_5_B06,HEPG2-01,5,B06,11\n"
    )
    root = make_screen(tmp_path / "s", train=train)
    screen = open_screen(root, max_plate=4)
    found = [(p.kind, p.row) for p in screen.problems if p.file and p.file.endswith(".csv")]
    assert found == [
        ("bad_well", 5),
        ("duplicate_id", 6),
        ("plate_out_of_range", 7),
        ("unknown_label_form", 8),
        ("plate_out_of_range", 10),
    ]
    b06 = screen.plate("HEPG2-01", 2).wells["B06"]  # the good row made it, with no images
    assert b06.sirna == "11" and [p.kind for p in b06.sites[0].problems] == ["missing_image"]
    assert 5 not in screen.experiments["HEPG2-01"].plates


def test_forced_plate_format_flags_wells_outside(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s", train=TRAIN + "HEPG2-01_2_P20,HEPG2-01,2,P20,8\n")
    screen = open_screen(root, plate_format=96)
    assert [(p.kind, p.row) for p in screen.problems] == [("bad_well", 5)]
    assert "96-well" in screen.problems[0].message


def test_unreadable_csv(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s")
    (root / "test.csv").write_bytes(b"\xff\xfe\x00garbage\x81\x82")
    screen = open_screen(root)
    assert [p.kind for p in screen.problems] == ["metadata_error"]
    assert screen.problems[0].file == str(root / "test.csv")
    assert "U2OS-01" in screen.experiments  # still there through test_controls.csv


def test_nothing_usable_raises(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s", train="", train_controls=None, test=None, test_controls=None)
    with pytest.raises(MetadataError, match="no usable metadata rows"):
        open_screen(root)


def test_missing_images_and_channels(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s")
    plate = root / "train" / "HEPG2-01" / "Plate1"
    for c in (1, 2, 3):
        (plate / f"B03_s2_w{c}.png").unlink()
    (plate / "C03_s1_w2.png").unlink()
    screen = open_screen(root)
    assert sorted((p.kind, p.site_id) for p in screen.problems) == [
        ("missing_channel", "HEPG2-01_1_C03_1"),
        ("missing_image", "HEPG2-01_1_B03_2"),
    ]
    wells = screen.plate("HEPG2-01", 1).wells
    assert "w2" in wells["C03"].sites[0].problems[0].message
    assert [s.ok for s in wells["B03"].sites] == [True, False]
    with pytest.raises(MissingImageError, match="B03_s2"):
        open_screen(root, strict=True)


def test_verify_finds_truncated_corrupt_shape_and_dtype(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s")
    plate = root / "train" / "HEPG2-01" / "Plate1"
    data = (plate / "B03_s1_w1.png").read_bytes()
    (plate / "B03_s1_w1.png").write_bytes(data[: len(data) // 2])  # truncated
    (plate / "B03_s2_w2.png").write_bytes(b"\x89PNG garbage")  # corrupt
    write_png(plate / "B04_s1_w3.png", 1, size=(9, 8))  # wrong shape
    Image.fromarray(np.full((8, 8), 999, np.uint16)).save(plate / "C03_s2_w1.png")  # dtype
    screen = open_screen(root)
    assert screen.problems == []  # open decodes a single image
    found = verify_images(screen)
    assert sorted((p.kind, Path(p.file).name) for p in found) == [
        ("corrupt_image", "B03_s1_w1.png"),
        ("corrupt_image", "B03_s2_w2.png"),
        ("wrong_dtype", "C03_s2_w1.png"),
        ("wrong_shape", "B04_s1_w3.png"),
    ]
    assert screen.problems == found
    wells = screen.plate("HEPG2-01", 1).wells
    assert not wells["B03"].usable_sites and [s.ok for s in wells["C03"].sites] == [True, False]
    with pytest.raises(CorruptImageError, match=r"B03_s1_w1\.png"):
        verify_images(open_screen(root), strict=True, workers=1)


def test_check_images_false_decodes_nothing(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s")
    first = root / "train" / "HEPG2-01" / "Plate1" / "B02_s1_w1.png"
    first.write_bytes(b"garbage")
    screen = open_screen(root, check_images=False)
    assert screen.image_size is None and screen.problems == []
    assert screen.channels == [1, 2, 3] and screen.site_count() == 14
    checked = open_screen(root)  # decoding finds it, then takes the size from the next one
    assert [p.kind for p in checked.problems] == ["corrupt_image"]
    assert checked.image_size == (8, 8)


def test_screen_without_any_image(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s")
    for split in ("train", "test"):
        shutil.rmtree(root / split)
    screen = open_screen(root)
    assert screen.channels == [] and screen.image_size is None
    assert screen.site_count() == 7  # one site per well, all flagged
    assert not any(s.ok for _, _, w in screen.wells() for s in w.sites)
    assert kinds(screen) == {"missing_image": 8}
    assert screen.problems[0].file == str(root) and "no image files" in screen.problems[0].message
