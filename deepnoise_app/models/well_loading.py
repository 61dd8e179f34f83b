"""A well's pixels for display (Qt-free): which sites, read and laid side by side."""

from __future__ import annotations

import numpy as np

from deepnoise_app.models.screen_cache import PerScreen
from deepnoise_app.models.thumbnails import PixelSource
from deepnoise_engine.screen.model import Screen, Site, Well

ALL_SITES = 0  # the site choice "all sites side by side"
SITE_GAP = 16  # pixels between sites shown side by side

_MAX_SITES: PerScreen[int] = PerScreen(
    lambda screen: max((len(w.sites) for p in screen.plates() for w in p.wells.values()),
                       default=0))


def max_sites(screen: Screen) -> int:
    """The most sites any well of ``screen`` has (once per screen: RxRx1 has 63 k wells)."""
    return _MAX_SITES.get(screen)


def site_choices(n_sites: int) -> list[tuple[str, int]]:
    """The site menu (label, choice) for wells of up to ``n_sites`` sites."""
    choices = [(f"Site {i}", i) for i in range(1, max(n_sites, 1) + 1)]
    return choices + ([("All sites side by side", ALL_SITES)] if n_sites > 1 else [])


def sites_to_show(well: Well, site: int) -> list[Site]:
    """The well's sites for a site choice (a 1-based site number or ALL_SITES)."""
    return list(well.sites) if site == ALL_SITES else [s for s in well.sites if s.index == site]


def side_by_side(tiles: list[np.ndarray], gap: int = SITE_GAP) -> np.ndarray:
    """``(C, H, W)`` tiles in one row, ``gap`` black pixels apart."""
    h = max(t.shape[1] for t in tiles)
    w = sum(t.shape[2] for t in tiles) + gap * (len(tiles) - 1)
    out = np.zeros((tiles[0].shape[0], h, w), dtype=np.uint8)
    x = 0
    for t in tiles:
        out[:, : t.shape[1], x : x + t.shape[2]] = t
        x += t.shape[2] + gap
    return out


def load_well_planes(
    pixels: PixelSource, well: Well, channels: list[int], site: int
) -> tuple[np.ndarray, dict[int, str], list[int]]:
    """Read a well for display.

    ``site`` is a 1-based site number or ALL_SITES (sites side by side with a gap).
    Returns ``(planes (C, H, W) uint8, missing {channel: reason}, sites shown)``; a channel
    is missing when it is absent from every shown site.
    """
    sites = sites_to_show(well, site)
    if not sites:
        size = pixels.image_size() or (64, 64)
        return (np.zeros((len(channels), *size), np.uint8),
                {c: "no such site" for c in channels}, [])
    tiles = []
    absent_all: dict[int, str] | None = None
    for s in sites:
        planes, missing = pixels.read(s, channels)
        tiles.append(planes)
        if absent_all is None:
            absent_all = dict(missing)
        else:
            absent_all = {c: r for c, r in absent_all.items() if c in missing}
    planes = tiles[0] if len(tiles) == 1 else side_by_side(tiles)
    return planes, absent_all or {}, [s.index for s in sites]
