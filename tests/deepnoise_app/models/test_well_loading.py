"""A well's pixels for display (Qt-free): one site or all sites side by side."""

from __future__ import annotations

import numpy as np

from deepnoise_app.models.thumbnails import PixelSource
from deepnoise_app.models.well_loading import (
    ALL_SITES,
    SITE_GAP,
    load_well_planes,
    max_sites,
    site_choices,
    sites_to_show,
)
from deepnoise_engine.screen.images import read_site


def test_one_site_and_all_sites_side_by_side(small_screen) -> None:
    well = next(small_screen.plates()).used_wells()[0]
    channels = list(small_screen.channels)
    pixels = PixelSource(small_screen, use_pack=False)
    planes, missing, shown = load_well_planes(pixels, well, channels, 1)
    assert missing == {} and shown == [1]
    np.testing.assert_array_equal(planes, read_site(well.sites[0], channels))
    both, _missing, shown = load_well_planes(pixels, well, channels, ALL_SITES)
    assert shown == [1, 2] and max_sites(small_screen) == 2
    assert both.shape[2] == 2 * planes.shape[2] + SITE_GAP
    assert not both[:, :, planes.shape[2]:planes.shape[2] + SITE_GAP].any()  # the gap


def test_a_site_the_well_lacks_is_missing_everywhere(small_screen) -> None:
    well = next(small_screen.plates()).used_wells()[0]
    assert sites_to_show(well, 9) == []
    planes, missing, shown = load_well_planes(PixelSource(small_screen, use_pack=False),
                                              well, [1, 2], 9)
    assert shown == [] and set(missing) == {1, 2} and not planes.any()


def test_site_choices_offer_all_sites_when_there_are_several() -> None:
    assert site_choices(0) == [("Site 1", 1)]
    assert site_choices(2) == [("Site 1", 1), ("Site 2", 2), ("All sites side by side", ALL_SITES)]
