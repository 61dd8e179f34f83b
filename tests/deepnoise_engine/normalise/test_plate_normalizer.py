"""Normalizer modes on hand-made numbers, persistence, and plate-vs-none on a demo screen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepnoise_engine.normalise.plate_normalizer import MODES, Normalizer
from deepnoise_engine.screen.pack_cache import pack_screen
from deepnoise_engine.screen.synthetic import make_demo

open_screen = pytest.importorskip("deepnoise_engine.screen.open").open_screen

# (experiment, well, channel-1 mean, channel-1 std); channel 2 has mean + 100 and 2 x std.
# B02 is the plate's negative control; BB-01 has no control well.
SITES = [
    ("AA-01", "B02", 10, 2),
    ("AA-01", "B03", 20, 4),
    ("AA-01", "B04", 30, 6),
    ("AA-02", "B02", 40, 2),
    ("AA-02", "B03", 50, 4),
    ("AA-02", "B04", 60, 6),
    ("BB-01", "B03", 100, 10),
    ("BB-01", "B04", 120, 10),
]


def _plane(mean: int, std: int) -> np.ndarray:
    """4 x 4 pixels, half ``mean - std`` and half ``mean + std``: exactly that mean and std."""
    plane = np.full((4, 4), mean - std, np.uint8)
    plane[:, ::2] = mean + std
    return plane


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("handmade")
    treat = ["id_code,experiment,plate,well,sirna"]
    controls = ["id_code,experiment,plate,well,sirna,well_type"]
    for i, (exp, well, mean, std) in enumerate(SITES):
        folder = root / "train" / exp / "Plate1"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_plane(mean, std)).save(folder / f"{well}_s1_w1.png")
        Image.fromarray(_plane(mean + 100, 2 * std)).save(folder / f"{well}_s1_w2.png")
        if well == "B02":
            controls.append(f"{exp}_1_{well},{exp},1,{well},9,negative_control")
        else:
            treat.append(f"{exp}_1_{well},{exp},1,{well},{i}")
    # a flagged site (channel 2 missing) with extreme pixels must not count
    Image.fromarray(np.full((4, 4), 250, np.uint8)).save(root / "train/AA-01/Plate1/B05_s1_w1.png")
    treat.append("AA-01_1_B05,AA-01,1,B05,8")
    (root / "train.csv").write_text("\n".join(treat) + "\n")
    (root / "train_controls.csv").write_text("\n".join(controls) + "\n")
    packed = pack_screen(open_screen(root), tmp_path_factory.mktemp("cache"))
    assert len(packed.sites) == 9 and packed.sites.ok.sum() == 8
    return packed


def _row(cache, site_id: str) -> int:
    return int(np.flatnonzero(cache.sites.site_id == site_id)[0])


@pytest.mark.parametrize(
    ("mode", "key", "mean", "std"),
    [
        ("global", "global", 53.75, 5.5),
        ("cell_type", "AA", 35.0, 4.0),
        ("cell_type", "BB", 110.0, 10.0),
        ("experiment", "AA-02", 50.0, 4.0),
        ("plate", "AA-01/1", 20.0, 4.0),
        ("plate", "BB-01/1", 110.0, 10.0),
        ("controls", "AA-01/1", 10.0, 2.0),
        ("controls", "AA-02/1", 40.0, 2.0),
        ("controls", "BB-01/1", 110.0, 10.0),  # no control well: falls back to the plate
        ("none", "global", 0.0, 255.0),
    ],
)
def test_group_statistics(cache, mode: str, key: str, mean: float, std: float) -> None:
    norm = Normalizer.fit(cache, mode)
    got_mean, got_std = norm.stats[key]
    shift, scale = (0.0, 1.0) if mode == "none" else (100.0, 2.0)
    np.testing.assert_allclose(got_mean, [mean, mean + shift], rtol=1e-6)
    np.testing.assert_allclose(got_std, [std, std * scale], rtol=1e-6)
    assert norm.fallbacks == (["BB-01/1"] if mode == "controls" else [])


def test_call_group_key_and_batch_stats(cache) -> None:
    norm = Normalizer.fit(cache, "plate")
    i = _row(cache, "AA-02_1_B04_1")
    assert norm.group_key(i) == "AA-02/1"
    x = cache.read(i).astype(np.float32)  # channel 1: 54 and 66
    out = norm(x, i)
    assert out.dtype == np.float32 and out.shape == (2, 4, 4)
    np.testing.assert_allclose(np.unique(out[0]), [(54 - 50) / 4, (66 - 50) / 4])
    np.testing.assert_allclose(np.unique(out[1]), [(148 - 150) / 8, (172 - 150) / 8])
    rows = [_row(cache, "AA-01_1_B03_1"), i, _row(cache, "BB-01_1_B03_1")]
    mean, std = norm.mean_std(rows)
    assert mean.shape == std.shape == (3, 2) and mean.dtype == np.float32
    np.testing.assert_allclose(mean[:, 0], [20, 50, 110])
    np.testing.assert_allclose(std[:, 1], [8, 8, 20])
    # a row mapping works as well as a row index
    record = cache.sites.iloc[i].to_dict()
    np.testing.assert_allclose(norm(x, record), out)


def test_site_mode_uses_each_sites_own_statistics(cache) -> None:
    norm = Normalizer.fit(cache, "site")
    i = _row(cache, "BB-01_1_B04_1")
    out = norm(cache.read(i).astype(np.float32), i)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), [0, 0], atol=1e-6)
    np.testing.assert_allclose(out.std(axis=(1, 2)), [1, 1], rtol=1e-5)
    assert norm.group_key(i) == "BB-01_1_B04_1"
    flagged = _row(cache, "AA-01_1_B05_1")
    with pytest.raises(ValueError, match="flagged"):
        norm.mean_std([flagged])
    # unbound (from a checkpoint): statistics come from the pixels themselves
    loose = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(loose(cache.read(i), {"site_id": "new"}), out, rtol=1e-5)


def test_to_dict_is_json_safe_and_round_trips(cache) -> None:
    norm = Normalizer.fit(cache, "cell_type")
    text = json.dumps(norm.to_dict())
    back = Normalizer.from_dict(json.loads(text))
    assert back.mode == "cell_type" and back.channels == [1, 2]
    assert set(back.stats) == {"AA", "BB"}
    i = _row(cache, "BB-01_1_B03_1")
    x = cache.read(i).astype(np.float32)
    np.testing.assert_allclose(back(x, cache.sites.iloc[i]), norm(x, i))
    with pytest.raises(ValueError, match="not bound"):
        back(x, i)
    with pytest.raises(KeyError, match="CC"):
        back(x, {"cell_type": "CC"})


def test_for_cache_keeps_portable_stats_and_refits_data_stats(cache, tmp_path: Path) -> None:
    other = pack_screen(
        open_screen(
            make_demo(
                tmp_path / "demo", cell_types=("AA",), train_experiments_per_cell_type=1,
                test_experiments_per_cell_type=0, plates_per_experiment=1, sirnas_per_plate=2,
                positive_controls=0, image_size=16, sites=1, channels=2, missing_wells=0,
            )
        )
    )  # fmt: skip
    trained = Normalizer.from_dict(Normalizer.fit(cache, "cell_type").to_dict())
    moved = trained.for_cache(other)
    np.testing.assert_allclose(moved.stats["AA"][0], [35, 135])  # training stats kept
    assert moved.group_key(0) == "AA"
    plate = Normalizer.fit(cache, "plate").for_cache(other)
    assert set(plate.stats) == {"AA-01/1"}  # recomputed from the new data
    np.testing.assert_allclose(plate.stats["AA-01/1"][0], other.site_mean.mean(axis=0), rtol=1e-5)


def test_unknown_mode_is_refused(cache) -> None:
    with pytest.raises(ValueError, match="plate"):
        Normalizer.fit(cache, "per_plate")
    assert set(MODES) == {"none", "global", "cell_type", "experiment", "plate", "site", "controls"}


def test_plate_normalisation_beats_none_on_a_demo_screen(tmp_path: Path) -> None:
    """Nearest centroid on normalised per-site channel statistics, one experiment to another."""
    root = make_demo(
        tmp_path / "demo", seed=5, cell_types=("HEPG2",), train_experiments_per_cell_type=2,
        test_experiments_per_cell_type=0, missing_wells=0,
    )  # fmt: skip
    cache = pack_screen(open_screen(root))
    labels = cache.sites.sirna.astype(int).to_numpy()
    train = (cache.sites.experiment == "HEPG2-01").to_numpy()
    accuracy = {}
    for mode in ("none", "plate"):
        mean, std = Normalizer.fit(cache, mode).mean_std(range(len(cache.sites)))
        feats = np.hstack([(cache.site_mean - mean) / std, cache.site_std / std])
        classes = np.unique(labels[train])
        centroids = np.stack([feats[train & (labels == k)].mean(axis=0) for k in classes])
        dist = ((feats[~train][:, None] - centroids[None]) ** 2).sum(axis=-1)
        accuracy[mode] = float((classes[dist.argmin(axis=1)] == labels[~train]).mean())
    chance = 1 / len(classes)
    assert accuracy["plate"] > 4 * chance
    assert accuracy["plate"] > accuracy["none"] + 0.1, accuracy
