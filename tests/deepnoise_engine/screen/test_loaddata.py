"""CellProfiler LoadData screens (JUMP column style, 16-bit TIFF per channel)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from deepnoise_engine.screen import MetadataError, WellType, open_screen, verify_images
from deepnoise_engine.screen.errors import BadWellError
from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.jump_style import LoadDataSpec, write_loaddata_screen
from deepnoise_engine.screen.open import detect_layout
from deepnoise_engine.screen.pack_cache import pack_screen


@pytest.fixture
def jump(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "jump"
    spec = LoadDataSpec(batches=["Batch1", "Batch2"], plates_per_batch=2)
    return root, write_loaddata_screen(root, spec)


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_jump_screen_opens_with_names_labels_and_pixels(jump) -> None:
    root, written = jump
    assert detect_layout(root) == "loaddata"
    screen = open_screen(root)
    assert screen.layout == "loaddata" and screen.problems == []
    assert screen.channel_names == ["DNA", "ER", "RNA", "AGP", "Mito"]
    assert screen.channels == [1, 2, 3, 4, 5] and screen.image_size == (24, 32)
    assert list(screen.experiments) == ["Batch1", "Batch2"]
    plates = [(p.experiment, p.index, p.name) for p in screen.plates()]
    assert plates == [("Batch1", 1, "BR00117001"), ("Batch1", 2, "BR00117002"),
                      ("Batch2", 1, "BR00117003"), ("Batch2", 2, "BR00117004")]
    plate = screen.plate("Batch2", 1)
    a01, a02, b01 = plate.wells["A01"], plate.wells["A02"], plate.wells["B01"]
    assert (a01.well_type, a01.sirna) == (WellType.NEGATIVE_CONTROL, "JCP2022_080000")
    assert a02.well_type == WellType.POSITIVE_CONTROL
    assert (b01.well_type, b01.sirna) == (WellType.TREATMENT, "JCP2022_080002")
    assert all(e.split == "train" for e in screen.experiments.values())
    for site in b01.sites:  # 16-bit pixels scaled down by 8 bits (bits = 16, the default)
        expected = (written[f"BR00117003/B01/{site.index}"] >> 8).astype(np.uint8)
        np.testing.assert_array_equal(read_site(site, screen.channels), expected)
    assert verify_images(screen) == []


def test_one_loaddata_csv_opens_its_plate(jump) -> None:
    root, _ = jump
    screen = open_screen(root / "load_data_csv" / "Batch1" / "BR00117002" / "load_data.csv")
    assert [(p.experiment, p.name) for p in screen.plates()] == [("Batch1", "BR00117002")]


def test_mapping_file_names_columns_types_and_bits(jump) -> None:
    root, written = jump
    for path in root.glob("load_data_csv/*/*/load_data.csv"):  # a lab's own column names
        rows = _csv_rows(path)
        rows[0] = [c.replace("Metadata_Batch", "Metadata_Run") for c in rows[0]]
        _write_rows(path, rows)
    rows = _csv_rows(root / "platemap.csv")
    rows[0] = ["position", "compound", "kind"]
    rows = [rows[0], *([r[0], r[1], {"negcon": "DMSO"}.get(r[2], r[2])] for r in rows[1:])]
    _write_rows(root / "map.csv", rows)
    (root / "platemap.csv").unlink()
    (root / "deepnoise.toml").write_text(
        'layout = "loaddata"\n'
        '[columns]\nexperiment = "Metadata_Run"\n'
        '[labels]\nfile = "map.csv"\nwell = "position"\nlabel = "compound"\nwell_type = "kind"\n'
        '[well_types]\nDMSO = "negative_control"\n'
        '[defaults]\ncell_type = "U2OS"\n'
        '[images]\nbits = 12\n'
        '[channels]\nuse = ["OrigDNA", "OrigMito"]\nnames = { OrigMito = "MitoTracker" }\n'
    )
    screen = open_screen(root)
    assert screen.problems == []
    assert screen.channel_names == ["DNA", "MitoTracker"] and screen.cell_types() == ["U2OS"]
    assert list(screen.experiments) == ["Batch1", "Batch2"]
    well = screen.plate("Batch1", 1).wells["A01"]
    assert well.well_type == WellType.NEGATIVE_CONTROL and well.sirna == "JCP2022_080000"
    pixels = written["BR00117001/A01/1"][[0, 4]]
    expected = np.minimum(pixels >> 4, 255).astype(np.uint8)
    np.testing.assert_array_equal(read_site(well.sites[0], screen.channels), expected)


def test_bad_mapping_file_is_a_named_error(jump) -> None:
    root, _ = jump
    (root / "deepnoise.toml").write_text("[colums]\nplate = 'x'\n")
    with pytest.raises(MetadataError, match=r"deepnoise\.toml.*unknown key\(s\) colums"):
        open_screen(root)
    (root / "deepnoise.toml").write_text("[well_types]\nDMSO = 'solvent'\n")
    with pytest.raises(MetadataError, match=r"well_types\.DMSO = 'solvent' is not one of"):
        open_screen(root)
    (root / "deepnoise.toml").write_text("[images]\nbits = 4\n")
    result = subprocess.run([sys.executable, "-m", "deepnoise_engine", "inspect", str(root)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "deepnoise.toml" in result.stderr and "images.bits = 4" in result.stderr


def test_every_problem_listed_and_no_well_dropped(jump) -> None:
    root, _ = jump
    path = root / "load_data_csv" / "Batch1" / "BR00117001" / "load_data.csv"
    rows = _csv_rows(path)
    header = rows[0]
    bad_well = list(rows[1])
    bad_well[3] = "Z99"
    bad_site = list(rows[2])
    bad_site[4] = "first"
    duplicate = list(rows[3])
    short = rows[4][:5]
    _write_rows(path, [*rows, bad_well, bad_site, duplicate, short])
    # a missing channel file and a whole missing image folder (another plate)
    missing_file = root / "images/Batch1/images/BR00117001/Images" / rows[5][header.index(
        "FileName_OrigER")]
    missing_file.unlink()
    folder = root / "images/Batch2/images/BR00117004/Images"
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    screen = open_screen(root)
    kinds = Counter(p.kind for p in screen.problems)
    assert kinds == {"bad_well": 1, "bad_row": 2, "duplicate_id": 1, "missing_channel": 1,
                     "missing_image": 1}
    lines = sorted((p.row, p.kind) for p in screen.problems if p.row)  # header is line 1
    assert lines == [(10, "bad_well"), (11, "bad_row"), (12, "duplicate_id"), (13, "bad_row")]
    assert "ER" in next(p.message for p in screen.problems if p.kind == "missing_channel")
    # every well is still there; the sites of the missing folder are flagged, not dropped
    assert sum(len(p.wells) for p in screen.plates()) == 16
    lost = screen.plate("Batch2", 2)
    assert all(not s.ok for w in lost.wells.values() for s in w.sites)
    assert sum(len(w.sites) for w in lost.wells.values()) == 8
    with pytest.raises(BadWellError, match=r"load_data\.csv, row 10: .*Z99"):
        open_screen(root, strict=True)


def test_no_loaddata_rows_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "load_data.csv").write_text("Metadata_Plate,Metadata_Well\n")
    with pytest.raises(MetadataError, match="no usable LoadData rows"):
        open_screen(tmp_path)


def test_pack_and_inspect_read_the_layout(jump, tmp_path: Path) -> None:
    root, written = jump
    cache = pack_screen(open_screen(root), tmp_path / "cache")
    assert cache.complete and cache.sites["ok"].all() and len(cache) == 32
    row = cache.sites.index[cache.sites["site_id"] == "Batch2_2_B02_2"][0]
    np.testing.assert_array_equal(cache.read(row),
                                  (written["BR00117004/B02/2"] >> 8).astype(np.uint8))
    result = subprocess.run([sys.executable, "-m", "deepnoise_engine", "inspect", str(root),
                             "--json"], capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout)
    assert summary["layout"] == "loaddata"
    assert summary["channel_names"] == ["DNA", "ER", "RNA", "AGP", "Mito"]
    assert summary["experiments"][0]["plates"][0]["name"] == "BR00117001"
