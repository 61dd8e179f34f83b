"""``deepnoise-engine convert SCREEN --to ome-zarr OUT``: plates that validate, read back
with the same pixels, and that napari-ome-zarr shows with the channel colours."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.screen import open_screen
from deepnoise_engine.screen.convert import NAMED_RGB, convert_to_omezarr
from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.jump_style import LoadDataSpec, write_loaddata_screen
from deepnoise_engine.screen.model import Screen

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"
RXRX1_COLOURS = Path(__file__).resolve().parents[3] / "resources" / "colormaps" / \
    "rxrx1_channels.json"


def _convert_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepnoise_engine", "convert", *args],
                          capture_output=True, text=True)


def _assert_same_screen(before: Screen, after: Screen, *, imaged_only: bool = False) -> int:
    """Same experiments, plates, wells, labels and pixels of every usable site; returns
    the number of sites compared. ``imaged_only``: plates without images were left out."""
    assert after.layout == "ome-zarr" and after.image_size == before.image_size
    assert after.channels == before.channels
    compared = 0
    for exp, plate, well in before.wells():
        if imaged_only and not any(w.usable_sites for w in plate.wells.values()):
            assert plate.index not in getattr(after.experiments.get(exp.name), "plates", {})
            continue
        other = after.plate(exp.name, plate.index).wells[well.name]
        assert (other.well_type, other.sirna) == (well.well_type, well.sirna)
        assert after.experiments[exp.name].split == exp.split
        assert after.experiments[exp.name].cell_type == exp.cell_type
        by_index = {s.index: s for s in other.sites}
        for site in well.usable_sites:
            np.testing.assert_array_equal(read_site(by_index[site.index], after.channels),
                                          read_site(site, before.channels))
            compared += 1
    return compared


def _validates(plate: Path) -> None:
    from ome_zarr_models import open_ome_zarr
    from ome_zarr_models.v05.hcs import HCS

    assert isinstance(open_ome_zarr(zarr.open_group(str(plate), mode="r")), HCS)


@pytest.fixture
def jump(tmp_path: Path) -> Path:
    root = tmp_path / "jump"
    write_loaddata_screen(root, LoadDataSpec(wells=["A01", "A02", "C05"], sites=2))
    return root


def test_loaddata_round_trip_with_predictions(jump: Path, tmp_path: Path) -> None:
    before = open_screen(jump)
    scores = tmp_path / "scores"
    scores.mkdir()
    pd.DataFrame({"experiment": [before.plate("2021_04_26_Batch1", 1).experiment] * 2,
                  "plate": [1, 2], "well": ["C05", "C05"], "sirna": ["JCP2022_080002"] * 2,
                  "confidence": [0.9, 0.4]}).to_csv(
        scores / "2021_04_26_Batch1_Plate1.csv", index=False)
    out = tmp_path / "out"
    result = convert_to_omezarr(before, out, predictions=scores)
    assert result.plates == ["BR00117001.zarr", "BR00117002.zarr"] and result.fields == 12
    for name in result.plates:
        _validates(out / name)
    after = open_screen(out)
    assert after.problems == [] and after.channel_names == before.channel_names
    assert [p.name for p in after.plates()] == ["BR00117001", "BR00117002"]
    assert _assert_same_screen(before, after) == 12
    meta = zarr.open_group(str(out / "BR00117001.zarr" / "C" / "5" / "0"), mode="r")
    omero = meta.attrs["ome"]["omero"]["channels"]
    assert [c["label"] for c in omero] == ["DNA", "ER", "RNA", "AGP", "Mito"]
    assert omero[0]["color"] == "0000FF" and omero[4]["color"] == "FF00FF"
    full = zarr.open_array(str(out / "BR00117001.zarr" / "C" / "5" / "0" / "s0"), mode="r")
    assert full.chunks == full.shape == (5, 24, 32)  # one chunk per field
    assert full.compressors[0].cname.value == "zstd"
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions["plate_name"]) == ["BR00117001", "BR00117002"]
    assert list(predictions["confidence"]) == [0.9, 0.4]


def test_cancel_leaves_out_unwritten(jump: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    events: list[dict] = []

    def sink(event: dict) -> None:
        events.append(event)
        cancel.set()  # after the first site

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        convert_to_omezarr(open_screen(jump), out, reporter=Reporter(sink, cancel))
    assert events[0]["stage"] == "convert" and events[0]["done"] == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_cli_checks_out_and_predictions_before_work(jump: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("keep me")
    result = _convert_cli(str(jump), "--to", "ome-zarr", str(taken))
    assert result.returncode == 2 and "not an empty folder" in result.stderr
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id_code,sirna\nx,1\n")
    out = tmp_path / "out"
    result = _convert_cli(str(jump), "--to", "ome-zarr", str(out), "--predictions", str(bad))
    assert result.returncode == 2
    assert "bad.csv, row 1: missing column(s) experiment, plate, well" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
    result = _convert_cli(str(jump), "--to", "ome-zarr", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fields"] == 12 and not list(tmp_path.glob(".out.*"))


@pytest.fixture(scope="module")
def rxrx1_converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Screen, Path]:
    if not (SAMPLE / "train.csv").is_file():
        pytest.skip(f"the RxRx1 sample is not at {SAMPLE}")
    out = tmp_path_factory.mktemp("rxrx1") / "plates"
    result = _convert_cli(str(SAMPLE), "--to", "ome-zarr", str(out), "--imaged-only")
    assert result.returncode == 0, result.stderr
    return open_screen(SAMPLE), out


@pytest.mark.slow
def test_rxrx1_sample_round_trip(rxrx1_converted) -> None:
    before, out = rxrx1_converted
    after = open_screen(out)
    _validates(out / "HEPG2-08_Plate2.zarr")
    assert _assert_same_screen(before, after, imaged_only=True) == 18  # every usable site
    # wells without images stay listed (from labels.csv), flagged
    assert after.site_count() >= sum(len(p.wells) for p in after.plates()) == sum(
        len(p.wells) for p in before.plates() if any(w.usable_sites for w in p.wells.values()))
    meta = zarr.open_group(str(out / "HEPG2-01_Plate1.zarr" / "B" / "2" / "0"), mode="r")
    table = json.loads(RXRX1_COLOURS.read_text())["channels"]
    omero = meta.attrs["ome"]["omero"]["channels"]
    assert [c["color"] for c in omero] == ["{:02X}{:02X}{:02X}".format(*table[str(i)]["rgb"])
                                           for i in range(1, 7)]
    assert [c["window"]["end"] for c in omero] == [table[str(i)]["window"][1]
                                                  for i in range(1, 7)]


def _napari_colours(make_napari_viewer, plate: Path) -> list[tuple[str, tuple, tuple]]:
    viewer = make_napari_viewer()
    layers = viewer.open(str(plate), plugin="napari-ome-zarr")
    assert layers
    return [(layer.name, tuple(np.round(layer.colormap.colors[-1][:3] * 255).astype(int)),
             tuple(layer.contrast_limits)) for layer in viewer.layers]


@pytest.mark.gui
def test_napari_ome_zarr_shows_loaddata_plate_colours(make_napari_viewer, jump: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert_to_omezarr(open_screen(jump), out)
    shown = _napari_colours(make_napari_viewer, out / "BR00117001.zarr")
    assert [name.rsplit(": ", 1)[-1] for name, _, _ in shown] == ["DNA", "ER", "RNA", "AGP",
                                                                   "Mito"]
    assert [rgb for _, rgb, _ in shown] == [NAMED_RGB[n.lower()] for n in
                                            ["DNA", "ER", "RNA", "AGP", "Mito"]]


@pytest.mark.gui
@pytest.mark.slow
def test_napari_ome_zarr_shows_rxrx1_colours(make_napari_viewer, rxrx1_converted) -> None:
    _, out = rxrx1_converted
    shown = _napari_colours(make_napari_viewer, out / "RPE-01_Plate3.zarr")
    table = json.loads(RXRX1_COLOURS.read_text())["channels"]
    assert [rgb for _, rgb, _ in shown] == [tuple(table[str(i)]["rgb"]) for i in range(1, 7)]
    assert [limits for _, _, limits in shown] == [
        tuple(float(v) for v in table[str(i)]["window"]) for i in range(1, 7)]


@pytest.mark.slow
def test_train_on_loaddata_then_score_its_ome_zarr_plates(tmp_path: Path) -> None:
    """The new layouts through train and score: a model trained on a LoadData screen
    scores the same screen converted to OME-Zarr (real engine processes)."""
    from deepnoise_engine.report.plate_report import read_plate_report

    root = tmp_path / "jump"
    wells = ["A01", "A02", "B01", "B02", "C01", "C02"]
    write_loaddata_screen(root, LoadDataSpec(batches=["B1", "B2"], wells=wells, size=(64, 64)))
    screen = open_screen(root)
    convert_to_omezarr(screen, tmp_path / "plates")
    engine = [sys.executable, "-m", "deepnoise_engine"]
    subprocess.run([*engine, "train", "--data", str(root), "--out", str(tmp_path / "run"),
                    "--preset", "tiny", "--set", "model.epochs=1", "--quiet", "--device", "cpu"],
                   check=True, capture_output=True, text=True)
    subprocess.run([*engine, "score", "--data", str(tmp_path / "plates"), "--model",
                    str(tmp_path / "run"), "--out", str(tmp_path / "scores"), "--tta", "1",
                    "--device", "cpu"], check=True, capture_output=True, text=True)
    classes = set(screen.classes())
    for plate in screen.plates():
        name = f"{plate.experiment}_Plate{plate.index}.csv"
        report = read_plate_report(tmp_path / "scores" / name)
        assert sorted(report["well"]) == wells
        truth = {w.name: w.sirna for w in plate.wells.values()}
        assert dict(zip(report["well"], report["sirna_true"], strict=True)) == truth
        assert set(report["sirna"]) <= classes
