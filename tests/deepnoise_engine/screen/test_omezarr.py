"""OME-Zarr HCS screens: a peer's plate (NGFF 0.4 on Zarr v2, the IDR's form, written with
ome-zarr-py's own writer functions, not DeepNoise's convert) read as a screen."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr

from deepnoise_engine.screen import MetadataError, WellType, open_screen, verify_images
from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.open import detect_layout
from deepnoise_engine.screen.pack_cache import pack_screen

CHANNELS = ["Hoechst", "Phalloidin", "WGA"]


def write_peer_plate(path: Path, wells: list[str], fields: int = 2, seed: int = 0,
                     name: str = "IDR-plate") -> dict[str, np.ndarray]:
    """An NGFF 0.4 plate as the IDR serves it: (t, c, z, y, x) uint16 fields, Zarr v2.
    Returns the pixels by ``well/field`` as (c, y, x)."""
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    fmt = FormatV04()
    rng = np.random.default_rng(seed)
    rows = sorted({w[0] for w in wells})
    columns = sorted({str(int(w[1:])) for w in wells}, key=int)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_plate_metadata(group, rows, columns, [f"{w[0]}/{int(w[1:])}" for w in wells],
                         fmt=fmt, name=name, field_count=fields,
                         acquisitions=[{"id": 0, "name": "run 1"}])
    written = {}
    omero = {"channels": [{"label": c, "color": rgb, "window": {"start": 0, "end": 4095,
                                                               "min": 0, "max": 65535}}
                          for c, rgb in zip(CHANNELS, ["0000FF", "00FF00", "FF0000"],
                                            strict=True)]}
    for well in wells:
        well_group = group.require_group(well[0]).require_group(str(int(well[1:])))
        write_well_metadata(well_group, [{"path": str(f), "acquisition": 0}
                                         for f in range(fields)], fmt=fmt)
        for f in range(fields):
            pixels = rng.integers(0, 4096, (1, len(CHANNELS), 1, 20, 24), np.uint16)
            write_image(pixels, well_group.require_group(str(f)), scale_factors=[], fmt=fmt,
                        axes="tczyx", omero=omero)
            written[f"{well}/{f}"] = pixels[0, :, 0]
    return written


@pytest.fixture
def peer(tmp_path: Path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    root = tmp_path / "idr"
    root.mkdir()
    written = {
        "plate-A": write_peer_plate(root / "plate-A.zarr", ["A01", "A02", "B01"], seed=1,
                                    name="plate-A"),
        "plate-B": write_peer_plate(root / "plate-B.zarr", ["A01", "B02"], seed=2,
                                    name="plate-B"),
    }
    (root / "labels.csv").write_text(
        "Plate,Well,Gene,Control\n"
        "plate-A,A01,NT,neg\nplate-A,A02,PLK1,pos\nplate-A,B01,KIF11,\n"
        "plate-B,A01,NT,neg\nplate-B,B02,ATM,\n"
    )
    (root / "deepnoise.toml").write_text(
        '[labels]\nplate = "Plate"\nwell = "Well"\nlabel = "Gene"\nwell_type = "Control"\n'
        '[well_types]\nneg = "negative_control"\npos = "positive_control"\n'
        '[defaults]\nexperiment = "screen-1"\ncell_type = "HeLa"\n[images]\nbits = 12\n'
    )
    return root, written


def _scaled(pixels: np.ndarray) -> np.ndarray:
    return np.minimum(pixels >> 4, 255).astype(np.uint8)


def test_peer_plates_open_as_a_screen(peer) -> None:
    root, written = peer
    assert detect_layout(root) == "ome-zarr"
    screen = open_screen(root)
    assert screen.layout == "ome-zarr" and screen.problems == []
    assert screen.channel_names == CHANNELS and screen.image_size == (20, 24)
    assert [(p.experiment, p.index, p.name) for p in screen.plates()] == [
        ("screen-1", 1, "plate-A"), ("screen-1", 2, "plate-B")]
    assert screen.cell_types() == ["HeLa"] and screen.experiments["screen-1"].split == "train"
    plate = screen.plate("screen-1", 1)
    assert (plate.wells["A01"].well_type, plate.wells["A01"].sirna) == (
        WellType.NEGATIVE_CONTROL, "NT")
    assert plate.wells["A02"].well_type == WellType.POSITIVE_CONTROL
    assert (plate.wells["B01"].well_type, plate.wells["B01"].sirna) == (
        WellType.TREATMENT, "KIF11")
    for name, number in (("plate-A", 1), ("plate-B", 2)):
        for well in screen.plate("screen-1", number).wells.values():
            assert [s.index for s in well.sites] == [1, 2]
            for site in well.sites:
                expected = _scaled(written[name][f"{well.name}/{site.index - 1}"])
                np.testing.assert_array_equal(read_site(site, screen.channels), expected)
    assert verify_images(screen) == []


def test_one_plate_folder_opens(peer) -> None:
    root, _ = peer
    screen = open_screen(root / "plate-B.zarr")  # the folder's labels and mapping apply
    assert [(p.experiment, p.name) for p in screen.plates()] == [("screen-1", "plate-B")]
    assert screen.plate("screen-1", 1).wells["A01"].sirna == "NT"
    assert sum(len(p.wells) for p in screen.plates()) == 2


def test_bad_wells_are_listed_and_kept(peer) -> None:
    root, _ = peer
    plate = root / "plate-A.zarr"
    attrs = json.loads((plate / "A" / "2" / ".zattrs").read_text())
    attrs["well"]["images"] = "not a list"
    (plate / "A" / "2" / ".zattrs").write_text(json.dumps(attrs))
    shutil.rmtree(plate / "B" / "1" / "1")  # a field the well lists is gone
    (root / "broken.zarr").mkdir()
    (root / "broken.zarr" / ".zattrs").write_text('{"plate": {"wells": 3}}')
    (root / "broken.zarr" / ".zgroup").write_text('{"zarr_format": 2}')
    screen = open_screen(root)
    kinds = Counter(p.kind for p in screen.problems)
    assert kinds == {"metadata_error": 2, "missing_image": 1}, screen.problems
    messages = " | ".join(str(p) for p in screen.problems)
    assert "broken.zarr" in messages and "not a valid NGFF plate" in messages
    assert "A/2" in messages and "B/1" in messages
    wells = screen.plate("screen-1", 1).wells
    assert set(wells) == {"A01", "A02", "B01"}  # no well dropped
    assert [s.ok for s in wells["A02"].sites] == [False]
    assert [s.ok for s in wells["B01"].sites] == [True, False]
    with pytest.raises(MetadataError, match=r"broken\.zarr: not a valid NGFF plate"):
        open_screen(root, strict=True)


def test_pack_reads_zarr_fields(peer, tmp_path: Path) -> None:
    root, written = peer
    cache = pack_screen(open_screen(root), tmp_path / "cache")
    assert cache.complete and len(cache) == 10 and cache.sites["ok"].all()
    row = cache.sites.index[cache.sites["site_id"] == "screen-1_2_B02_2"][0]
    np.testing.assert_array_equal(cache.read(row), _scaled(written["plate-B"]["B02/1"]))


def test_inspect_cli_on_ome_zarr(peer) -> None:
    root, _ = peer
    result = subprocess.run([sys.executable, "-m", "deepnoise_engine", "inspect", str(root)],
                            capture_output=True, text=True, check=True)
    assert "(ome-zarr layout)" in result.stdout
    assert "channels: 3 (Hoechst, Phalloidin, WGA)" in result.stdout


def write_models_plate(path: Path, wells: list[str], fields: int = 2,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """A second peer: an NGFF 0.4 plate whose metadata ome-zarr-models (pydantic-zarr)
    writes from its own models, (c, y, x) uint8 fields filled with zarr; neither
    ome-zarr-py nor DeepNoise's convert is involved. Returns the pixels by ``well/field``."""
    from ome_zarr_models.v04.axes import Axis
    from ome_zarr_models.v04.hcs import HCS
    from ome_zarr_models.v04.image import Image
    from ome_zarr_models.v04.well import Well
    from pydantic_zarr.v2 import ArraySpec, GroupSpec

    axes = [Axis(name="c", type="channel"), Axis(name="y", type="space"),
            Axis(name="x", type="space")]
    spec = ArraySpec(shape=(len(CHANNELS), 18, 22), chunks=(1, 18, 22), dtype="uint8",
                     compressor=None, attributes={})
    rows = sorted({w[0] for w in wells})
    columns = sorted({str(int(w[1:])) for w in wells}, key=int)
    plate = {"name": "models-plate", "version": "0.4", "field_count": fields,
             "rows": [{"name": r} for r in rows], "columns": [{"name": c} for c in columns],
             "wells": [{"path": f"{w[0]}/{int(w[1:])}", "rowIndex": rows.index(w[0]),
                        "columnIndex": columns.index(str(int(w[1:])))} for w in wells]}
    row_groups: dict[str, GroupSpec] = {}
    for w in wells:
        images = {str(f): Image.new(array_specs=[spec], paths=["0"], axes=axes,
                                    scales=[[1.0, 0.65, 0.65]], translations=[None])
                  for f in range(fields)}
        well = Well(attributes={"well": {"images": [{"path": str(f)} for f in range(fields)],
                                         "version": "0.4"}}, members=images)
        row_groups.setdefault(w[0], GroupSpec(attributes={}, members={})).members[
            str(int(w[1:]))] = well
    HCS(attributes={"plate": plate}, members=row_groups).to_zarr(
        zarr.storage.LocalStore(str(path)), "", overwrite=True)
    rng = np.random.default_rng(seed)
    root = zarr.open_group(str(path), mode="r+", zarr_format=2)
    written = {}
    for w in wells:
        for f in range(fields):
            field = root[f"{w[0]}/{int(w[1:])}/{f}"]
            field.attrs["omero"] = {"channels": [{"label": c} for c in CHANNELS]}
            pixels = rng.integers(0, 256, spec.shape, np.uint8)
            field["0"][...] = pixels
            written[f"{w}/{f}"] = pixels
    return written


def test_a_plate_written_by_ome_zarr_models_opens_with_its_pixels(tmp_path: Path) -> None:
    written = write_models_plate(tmp_path / "models.zarr", ["B03", "C05"], seed=3)
    screen = open_screen(tmp_path / "models.zarr")
    assert screen.layout == "ome-zarr" and screen.problems == []
    assert screen.channel_names == CHANNELS and screen.image_size == (18, 22)
    (plate,) = screen.plates()
    assert sorted(plate.wells) == ["B03", "C05"]
    for well in plate.wells.values():
        assert [s.index for s in well.sites] == [1, 2]
        for site in well.sites:
            np.testing.assert_array_equal(read_site(site, screen.channels),
                                          written[f"{well.name}/{site.index - 1}"])
