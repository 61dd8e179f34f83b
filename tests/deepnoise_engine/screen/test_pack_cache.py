"""The pack cache: round trip, statistics, incremental and interrupted packs, problems."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.model import Screen
from deepnoise_engine.screen.pack_cache import (
    SITE_COLUMNS,
    PackCache,
    default_cache_dir,
    pack_screen,
)
from deepnoise_engine.screen.synthetic import make_demo

open_screen = pytest.importorskip("deepnoise_engine.screen.open").open_screen

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"
TINY = dict(
    cell_types=("HEPG2",),
    train_experiments_per_cell_type=1,
    test_experiments_per_cell_type=1,
    plates_per_experiment=2,
    sirnas_per_plate=3,
    positive_controls=1,
    image_size=20,
    sites=2,
    channels=4,
    missing_wells=0,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("tiny") / "screen", seed=1, **TINY)


@pytest.fixture
def screen_dir(tmp_path: Path, template: Path) -> Path:
    """A private copy each test may change."""
    return Path(shutil.copytree(template, tmp_path / "screen"))


def _site(screen: Screen, site_id: str):
    for _, _, well in screen.wells():
        for site in well.sites:
            if site.site_id == site_id:
                return site
    raise KeyError(site_id)


def _plate_files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "plates").iterdir())


def test_round_trip_and_statistics(screen_dir: Path) -> None:
    screen = open_screen(screen_dir)
    unpacked = PackCache.open(screen, build=False)  # only looks: creates nothing
    assert len(unpacked.sites) == 0 and len(unpacked.missing_plates) == 4
    assert not (screen_dir / ".deepnoise").exists()
    events: list[dict] = []
    cache = pack_screen(screen, reporter=Reporter(events.append), workers=2)
    assert cache.folder == screen_dir / ".deepnoise" / "pack"
    assert list(cache.sites.columns) == SITE_COLUMNS
    assert len(cache.sites) == screen.site_count() == 4 * 5 * 2
    assert cache.sites["site_id"].is_unique and cache.sites["ok"].all()
    assert cache.complete and cache.missing_plates == []
    assert cache.site_mean.shape == cache.site_std.shape == (len(cache.sites), 4)
    assert cache.site_mean.dtype == np.float32
    for i, row in enumerate(cache.sites.itertuples()):
        pixels = read_site(_site(screen, row.site_id), [1, 2, 3, 4])
        assert np.array_equal(cache.read(i), pixels)
        np.testing.assert_allclose(cache.site_mean[i], pixels.mean(axis=(1, 2)), rtol=1e-5)
        np.testing.assert_allclose(cache.site_std[i], pixels.std(axis=(1, 2)), rtol=1e-4)
    first = cache.sites.iloc[0]
    assert (first.experiment, first.plate, first.well, first.site) == ("HEPG2-01", 1, "B02", 1)
    assert first.well_type == "negative_control" and first.sirna == "7"
    assert first.cell_type == "HEPG2" and first.id_code == "HEPG2-01_1_B02"
    test_rows = cache.sites[cache.sites.split == "test"]
    assert test_rows[test_rows.well_type == "treatment"].sirna.isna().all()
    array = cache.plate_array("HEPG2-02", 2)
    assert isinstance(array, np.memmap) and array.shape == (10, 4, 20, 20)
    assert events[-1]["done"] == events[-1]["total"] == 40
    assert set(events[-1]) >= {"event", "stage", "done", "total", "eta_s"}
    assert cache.read_many([0, 3]).shape == (2, 4, 20, 20)
    clone = pickle.loads(pickle.dumps(cache))  # DataLoader workers started with spawn
    assert np.array_equal(clone.read(7), cache.read(7)) and clone.sites.equals(cache.sites)


def test_second_pack_skips_and_touched_png_repacks_only_its_plate(screen_dir: Path) -> None:
    pack_screen(open_screen(screen_dir))
    again = pack_screen(open_screen(screen_dir))
    assert again.last_pack.packed == [] and len(again.last_pack.skipped) == 4
    # rewrite one PNG with new pixels (different size or mtime changes the fingerprint)
    png = screen_dir / "train" / "HEPG2-01" / "Plate2" / "B02_s2_w3.png"
    new = np.full((20, 20), 201, np.uint8)
    Image.fromarray(new).save(png)
    os.utime(png, ns=(os.stat(png).st_atime_ns, os.stat(png).st_mtime_ns + 10**9))
    screen = open_screen(screen_dir)
    third = pack_screen(screen)
    assert third.last_pack.packed == ["HEPG2-01/2"]
    assert sorted(third.last_pack.skipped) == ["HEPG2-01/1", "HEPG2-02/1", "HEPG2-02/2"]
    row = int(np.flatnonzero(third.sites.site_id == "HEPG2-01_2_B02_2")[0])
    assert np.array_equal(third.read(row)[2], new)
    assert third.site_mean[row, 2] == pytest.approx(201.0)
    # opening without building sees the same, current cache
    opened = PackCache.open(open_screen(screen_dir), build=False)
    assert opened.complete and np.array_equal(opened.read(row)[2], new)


def test_cancel_after_first_plate_then_resume(screen_dir: Path) -> None:
    screen = open_screen(screen_dir)
    cancel = threading.Event()

    def progress(event: dict) -> None:
        if event["done"] >= 10:  # the first plate holds 10 sites
            cancel.set()

    with pytest.raises(Cancelled) as stopped:
        pack_screen(screen, reporter=Reporter(progress, cancel), workers=1)
    assert stopped.value.partial["cancelled"] and stopped.value.partial["sites"] == 10
    assert stopped.value.partial["pack"]["packed"] == ["HEPG2-01/1"]
    cache = PackCache.open(open_screen(screen_dir), build=False)
    assert cache.missing_plates == ["HEPG2-01/2", "HEPG2-02/1", "HEPG2-02/2"]
    assert len(cache.sites) == 10 and not cache.complete
    # only complete plates on disk, no temporary files
    assert _plate_files(cache.folder) == ["HEPG2-01_Plate1.json", "HEPG2-01_Plate1.npy"]
    reopened = PackCache.open(open_screen(screen_dir), build=False)
    assert reopened.missing_plates == cache.missing_plates
    assert np.array_equal(reopened.read(5), cache.read(5))
    with pytest.raises(KeyError, match="not packed"):
        reopened.plate_array("HEPG2-02", 1)
    finished = PackCache.open(open_screen(screen_dir))
    assert finished.last_pack.skipped == ["HEPG2-01/1"]
    assert finished.complete and len(finished.sites) == 40


def test_stale_temp_files_of_a_dead_pack_are_removed(screen_dir: Path) -> None:
    cache = pack_screen(open_screen(screen_dir))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    junk = cache.folder / "plates" / f".HEPG2-01_Plate1.tmp-{dead.stdout.strip()}-abcd1234.npy"
    junk.write_bytes(b"half a plate")
    pack_screen(open_screen(screen_dir))
    assert not junk.exists()


def test_problem_sites_are_flagged_not_dropped(screen_dir: Path) -> None:
    plate = screen_dir / "train" / "HEPG2-01" / "Plate1"
    wells = sorted({p.name.split("_")[0] for p in plate.glob("*_s1_w1.png")})
    missing, corrupt = wells[1], wells[2]
    (plate / f"{missing}_s1_w4.png").unlink()  # missing channel, found by open_screen
    data = (plate / f"{corrupt}_s2_w2.png").read_bytes()
    (plate / f"{corrupt}_s2_w2.png").write_bytes(data[: len(data) // 2])  # truncated PNG
    screen = open_screen(screen_dir)
    cache = pack_screen(screen)
    by_id = cache.sites.set_index("site_id")
    missing_id, corrupt_id = f"HEPG2-01_1_{missing}_1", f"HEPG2-01_1_{corrupt}_2"
    assert len(cache.sites) == 40  # nothing dropped
    assert not by_id.loc[missing_id, "ok"] and not by_id.loc[corrupt_id, "ok"]
    assert cache.sites["ok"].sum() == 38
    assert by_id.loc[missing_id, "array_row"] == -1
    corrupt_row = int(np.flatnonzero(cache.sites.site_id == corrupt_id)[0])
    assert not cache.read(corrupt_row).any()  # an all-zero row
    assert np.isnan(cache.site_mean[corrupt_row]).all()
    with pytest.raises(ValueError, match=missing_id):
        cache.read(int(np.flatnonzero(cache.sites.site_id == missing_id)[0]))
    kinds = {p.site_id: p.kind for p in screen.problems}
    assert kinds[corrupt_id] == "corrupt_image"  # read error added to the screen's problems
    assert missing_id in kinds
    assert any(str(plate / f"{corrupt}_s2_w2.png") == p.file for p in screen.problems)
    # a fresh screen reopened from the cache gets the packing problems back
    fresh = open_screen(screen_dir)
    assert corrupt_id not in {p.site_id for p in fresh.problems}
    reopened = PackCache.open(fresh, build=False)
    assert reopened.complete and reopened.sites["ok"].sum() == 38
    assert corrupt_id in {p.site_id for p in fresh.problems}
    assert not _site(fresh, corrupt_id).ok
    meta = json.loads((cache.folder / "plates" / "HEPG2-01_Plate1.json").read_text())
    assert meta["ok"].count(False) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_screen_packs_into_user_cache(
    screen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPNOISE_CACHE_DIR", str(tmp_path / "usercache"))
    assert default_cache_dir(screen_dir) == screen_dir / ".deepnoise" / "pack"
    readonly = tmp_path / "readonly"
    shutil.copytree(screen_dir, readonly)
    readonly.chmod(0o555)
    try:
        folder = default_cache_dir(readonly)
        assert folder.parent == tmp_path / "usercache" / "pack"
        cache = pack_screen(open_screen(readonly))
        assert cache.folder == folder and cache.complete
        assert not (readonly / ".deepnoise").exists()
    finally:
        readonly.chmod(0o755)


def test_cli_pack_json(screen_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    cmd = [sys.executable, "-m", "deepnoise_engine", "pack", str(screen_dir), "--out", str(out),
           "--json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["sites"] == 40 and info["sites_flagged"] == 0 and info["plates_missing"] == []
    assert len(info["run"]["packed"]) == 4 and Path(info["cache"]) == out
    again = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout)
    assert again["run"]["packed"] == [] and len(again["run"]["skipped"]) == 4
    bad = subprocess.run([sys.executable, "-m", "deepnoise_engine", "pack", str(tmp_path / "no")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "no" in bad.stderr


def test_real_sample_site_with_missing_channels_is_flagged(tmp_path: Path) -> None:
    if not SAMPLE.is_dir():
        pytest.skip(f"RxRx1 sample not found at {SAMPLE}")
    screen = open_screen(SAMPLE)
    # keep the experiments that have images, so the test stays fast
    keep = ("HEPG2-01", "RPE-01")
    screen.experiments = {k: v for k, v in screen.experiments.items() if k in keep}
    cache = pack_screen(screen, tmp_path / "cache")
    by_id = cache.sites.set_index("site_id")
    assert by_id.loc["HEPG2-01_1_B02_1", "ok"] and not by_id.loc["HEPG2-01_1_B02_2", "ok"]
    assert by_id.loc["HEPG2-01_1_B02_1", "well_type"] == "negative_control"
    row = int(np.flatnonzero(cache.sites.site_id == "HEPG2-01_1_B02_1")[0])
    pixels = cache.read(row)
    assert pixels.shape == (6, 512, 512) and pixels.dtype == np.uint8
    assert np.array_equal(pixels, read_site(_site(screen, "HEPG2-01_1_B02_1"), screen.channels))
    assert cache.sites["ok"].sum() == 8  # B02 site 1 of 4 plates x 2 experiments
    # image-less sites take no space in the arrays
    assert cache.plate_array("HEPG2-01", 1).shape == (1, 6, 512, 512)


def test_unwritable_location_falls_back_to_user_cache(
    screen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``<root>/.deepnoise`` cannot be a folder here (a file is in the way): the user cache."""
    monkeypatch.setenv("DEEPNOISE_CACHE_DIR", str(tmp_path / "usercache"))
    (screen_dir / ".deepnoise").write_text("not a folder")
    folder = default_cache_dir(screen_dir)
    assert folder.parent == tmp_path / "usercache" / "pack"
    assert folder == default_cache_dir(str(screen_dir) + "/")  # same root, same folder
    cache = pack_screen(open_screen(screen_dir))
    assert cache.folder == folder and cache.complete
    assert (screen_dir / ".deepnoise").read_text() == "not a folder"
    opened = PackCache.open(str(screen_dir), build=False)  # a path works as well
    assert opened.folder == folder and opened.complete and len(opened.sites) == 40
