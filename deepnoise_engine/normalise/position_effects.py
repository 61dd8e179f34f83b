"""Plate-position effects: wells near the plate's border read dimmer or brighter.

Evaporation and temperature gradients make a plate's outer wells differ from its inner
ones in every channel (the "edge effect" of high-content screens). A plate-wise mean and
std cannot remove it, and a siRNA whose phenotype is a change of brightness then looks
like another siRNA when it sits at the border. This module estimates, per experiment,
ring (distance to the plate's border: 0 = outermost row or column, then 1, 2, 3 and
more) and channel, multiplicative factors of the level and of the spread from the data
themselves, and divides them out.

Estimate, per channel and statistic (site mean, site std): the well's mean of its usable
sites' values in log units; per experiment, a median polish of plate level + ring
effect, relative to the innermost ring with at least ``MIN_WELLS`` wells; each effect
shrunk towards 0 by how far it stands out of the wells' own spread (nothing within two
standard errors), so a screen without position effects is left nearly as it is. siRNAs
sit at random places, so their effects average out of a ring's median.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

#: Rings at this distance from the border and beyond are pooled (a plate's interior).
MAX_RING = 3
#: Fewest wells of a ring in an experiment for a factor to be estimated.
MIN_WELLS = 8
#: Effects within this many standard errors of 0 vanish (see ``ring_effects``).
SHRINK_SE = 2.0
MODES = ("none", "ring")


def well_rings(wells: np.ndarray, plate_rows: np.ndarray, plate_cols: np.ndarray) -> np.ndarray:
    """Distance of each well to its plate's border, capped at ``MAX_RING`` -> (N,) int."""
    from deepnoise_engine.screen.model import parse_well

    rc = np.array([parse_well(w) for w in wells], dtype=np.int64).reshape(-1, 2)
    r, c = rc[:, 0], rc[:, 1]
    d = np.minimum.reduce([r, plate_rows - 1 - r, c, plate_cols - 1 - c])
    return np.clip(d, 0, MAX_RING)


def _plate_shapes(cache: Any, sites: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of each site's plate (the screen's plate format, else the
    smallest standard format holding the screen's wells)."""
    from deepnoise_engine.screen.model import PlateFormat

    fallback = PlateFormat.smallest_fitting(sorted(set(sites["well"].astype(str))))
    screen = getattr(cache, "screen", None)
    shapes: dict[tuple[str, int], tuple[int, int]] = {}
    keys = list(zip(sites["experiment"].astype(str), sites["plate"].astype(int), strict=True))
    for key in dict.fromkeys(keys):
        fmt = fallback
        with contextlib.suppress(KeyError, AttributeError, TypeError, ValueError):
            fmt = screen.plate(*key).format if screen is not None else fallback
        shapes[key] = (fmt.rows, fmt.columns)
    rows = np.array([shapes[k][0] for k in keys], dtype=np.int64)
    cols = np.array([shapes[k][1] for k in keys], dtype=np.int64)
    return rows, cols


def site_factors(cache: Any, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Position factors per cache row of the level (site means) and of the spread (site
    stds), each ``(n_sites, C)`` (1 where none), and a JSON-safe description
    ``{experiment: {ring: {"mean": [per channel], "std": [...]}}}`` of those applied.

    Two factors, because a position effect that scales the stain leaves the camera's
    offset where it was: the spread follows the effect, the level only part of it."""
    described: dict[str, Any] = {}
    factors = {name: np.ones(np.shape(cache.site_mean), np.float64) for name in ("mean", "std")}
    if ok.any():
        sites = cache.sites.reset_index(drop=True)
        rings = well_rings(sites["well"].astype(str).to_numpy(), *_plate_shapes(cache, sites))
        experiment = sites["experiment"].astype(str).to_numpy()
        plate = (sites["experiment"].astype(str) + "/" + sites["plate"].astype(str)).to_numpy()
        # the usable sites grouped by well; ``at``: each well's first usable site
        _, first, inverse = np.unique(sites["id_code"].astype(str).to_numpy()[ok],
                                      return_index=True, return_inverse=True)
        at = np.flatnonzero(ok)[first]
        for name, values in (("mean", cache.site_mean), ("std", cache.site_std)):
            sums = np.zeros((len(first), np.shape(values)[1]))
            np.add.at(sums, inverse, np.asarray(values, np.float64)[ok])
            log_mean = np.log(np.maximum(sums / np.bincount(inverse)[:, None], 1e-3))
            for exp in np.unique(experiment[at]):
                on = experiment[at] == exp
                for ring, effect in ring_effects(log_mean[on], plate[at][on],
                                                 rings[at][on]).items():
                    if np.any(effect != 0):
                        factors[name][(experiment == exp) & (rings == ring)] = np.exp(effect)
                        described.setdefault(str(exp), {}).setdefault(str(ring), {})[name] = [
                            round(float(v), 4) for v in np.exp(effect)]
    return factors["mean"], factors["std"], described


def ring_effects(log_mean: np.ndarray, plates: np.ndarray, rings: np.ndarray,
                 iterations: int = 5) -> dict[int, np.ndarray]:
    """One experiment's ring effects ``{ring: (C,) log factor}`` relative to its innermost
    ring with ``MIN_WELLS`` wells, from its wells' log intensities ``(N, C)``.

    Median polish of plate level + ring effect (a plate's level over all of its rings, a
    ring's effect over all of the experiment's plates), then each effect shrunk towards 0
    by ``max(0, 1 - (2 se / effect)^2)``: effects within two standard errors (a screen
    without position effects) vanish, 3 se keep half, 5 se 84 %.
    """
    present = [r for r in range(MAX_RING + 1) if (rings == r).sum() >= MIN_WELLS]
    if len(present) < 2:
        return {}
    reference = present[-1]
    used = np.isin(rings, present)
    y, ring_of, plate_of = log_mean[used], rings[used], plates[used]
    effect = {r: np.zeros(y.shape[1]) for r in present}
    level = np.zeros_like(y)
    for _ in range(iterations):
        shifted = y - np.stack([effect[r] for r in ring_of])
        for plate in np.unique(plate_of):
            on = plate_of == plate
            level[on] = np.median(shifted[on], axis=0)
        base = np.median((y - level)[ring_of == reference], axis=0)
        for r in present:
            effect[r] = np.median((y - level)[ring_of == r], axis=0) - base
    residual = y - level - np.stack([effect[r] for r in ring_of])
    ref_se = _median_se(residual[ring_of == reference])
    result = {}
    for r in present[:-1]:
        se = np.hypot(_median_se(residual[ring_of == r]), ref_se)  # a difference of two
        keep = np.clip(1.0 - (SHRINK_SE * se / np.maximum(np.abs(effect[r]), 1e-9)) ** 2,
                       0.0, 1.0)
        result[r] = effect[r] * keep
    return result


def _median_se(values: np.ndarray) -> np.ndarray:
    """Standard error of the column medians of ``values`` (N, C): 1.25 x MAD-sigma / sqrt(N)."""
    sigma = 1.4826 * np.median(np.abs(values - np.median(values, axis=0)), axis=0)
    return 1.25 * sigma / np.sqrt(len(values))
