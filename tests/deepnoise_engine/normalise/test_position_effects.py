"""Plate-position (edge) effects: recovered where a screen has them, left alone where it
has none, divided out by the plate normaliser, and kept through its persistence."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from deepnoise_engine.normalise.plate_normalizer import Normalizer
from deepnoise_engine.normalise.position_effects import site_factors, well_rings
from deepnoise_engine.screen.model import well_name

CHANNELS = 3


def _cache(edge_factor: float, seed: int = 0, plates: int = 4) -> SimpleNamespace:
    """Two experiments of 96-well plates (inner 60 wells used, two sites each): per well a
    siRNA-like log-normal brightness (sd 0.3 per channel) and a plate gain; wells next to
    the unused border (ring 1) times ``edge_factor``."""
    rng = np.random.default_rng(seed)
    rows, means = [], []
    for exp in ("AA-01", "AA-02"):
        for plate in range(1, plates + 1):
            gain = np.exp(rng.normal(0, 0.4, CHANNELS))
            for r in range(1, 7):
                for c in range(1, 11):
                    well = well_name(r, c)
                    ring = min(r, 7 - r, c, 11 - c)
                    level = 20 * gain * np.exp(rng.normal(0, 0.3, CHANNELS))
                    level *= edge_factor if ring == 1 else 1.0
                    for site in (1, 2):
                        rows.append({"site_id": f"{exp}_{plate}_{well}_{site}",
                                     "experiment": exp, "plate": plate, "well": well,
                                     "id_code": f"{exp}_{plate}_{well}", "site": site,
                                     "cell_type": "AA", "ok": True})
                        means.append(level * np.exp(rng.normal(0, 0.05, CHANNELS)))
    site_mean = np.array(means, np.float32)
    return SimpleNamespace(sites=pd.DataFrame(rows), site_mean=site_mean,
                           site_std=site_mean / 3, channels=list(range(1, CHANNELS + 1)))


def test_rings_are_distances_to_the_plate_border() -> None:
    wells = np.array(["A01", "B02", "B07", "E05", "H12", "H12", "P24"])
    rows = np.array([8, 8, 8, 8, 8, 16, 16])
    cols = np.array([12, 12, 12, 12, 12, 24, 24])
    assert well_rings(wells, rows, cols).tolist() == [0, 1, 1, 3, 0, 3, 0]


def test_an_edge_effect_is_recovered_per_experiment_and_channel() -> None:
    cache = _cache(edge_factor=0.7)
    factors, spread, described = site_factors(cache, cache.sites["ok"].to_numpy())
    assert set(described) == {"AA-01", "AA-02"}
    assert np.allclose(spread, factors, atol=0.05)  # here the stds scale with the means
    for exp in described:
        # shrunk a little towards 1 (its standard error is ~0.065 in log units here)
        edge = np.array(described[exp]["1"]["mean"])
        assert np.all((edge > 0.65) & (edge < 0.85)), described[exp]
        inner = described[exp].get("2", {}).get("mean", [1.0] * CHANNELS)
        assert np.allclose(inner, 1.0, atol=0.08)
    edge = cache.sites["well"].str.match(r"^(B|G)|^.(02|11)$").to_numpy()
    assert factors[edge].max() < 0.85 and np.abs(factors[~edge] - 1).max() < 0.08


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_screen_without_position_effects_is_left_nearly_alone(seed: int) -> None:
    cache = _cache(edge_factor=1.0, seed=seed)
    factors, spread, _ = site_factors(cache, cache.sites["ok"].to_numpy())
    assert np.abs(np.log(spread)).max() < 0.1
    assert np.abs(np.log(factors)).max() < 0.1  # within the wells' own noise, shrunk
    assert np.median(np.abs(np.log(factors))) == 0 == np.median(np.abs(np.log(spread)))


def test_the_plate_normaliser_divides_the_effect_out_and_keeps_it() -> None:
    cache = _cache(edge_factor=0.7)
    edge = cache.sites["well"].str.match(r"^(B|G)|^.(02|11)$").to_numpy()
    rows = np.arange(len(cache.sites))
    gaps = {}
    for position in ("none", "ring"):
        norm = Normalizer.fit(cache, "plate", position)
        _, std = norm.mean_std(rows)
        z = np.log(cache.site_mean / std)  # brightness after normalisation, per site
        gaps[position] = float(np.abs(z[edge].mean(0) - z[~edge].mean(0)).max())
    assert gaps["none"] > 0.3 and gaps["ring"] < 0.08, gaps
    ring = Normalizer.fit(cache, "plate", "ring")
    again = Normalizer.from_dict(ring.to_dict())
    assert again.position == "ring" and ring.to_dict()["position_factors"]
    refit = again.for_cache(cache)  # new data: its own factors
    assert refit.position == "ring"
    assert np.allclose(refit.mean_std(rows)[0], ring.mean_std(rows)[0])
    with pytest.raises(ValueError, match="position correction"):
        Normalizer("plate", position="rows")


def test_level_and_spread_have_their_own_factors() -> None:
    """A dimmer stain over an unchanged camera offset: the stds follow the dimming, the
    means only part of it; each gets its own factor."""
    cache = _cache(edge_factor=0.7)
    cache.site_mean = cache.site_mean + 20.0  # an offset: the means' edge ratio is ~0.85
    level, spread, _ = site_factors(cache, cache.sites["ok"].to_numpy())
    edge = cache.sites["well"].str.match(r"^(B|G)|^.(02|11)$").to_numpy()
    assert 0.8 < np.median(level[edge]) < 0.9 and 0.65 < np.median(spread[edge]) < 0.8
