"""Colour tables (Qt-free): channel colours and windows, composites, the confidence ramp."""

from __future__ import annotations

import json

import numpy as np

from deepnoise_app.models import colours


def test_channel_colours_and_composite() -> None:
    assert colours.channel_rgb(1) == (19, 0, 249)
    assert colours.channel_window(2) == (0.0, 107.0)
    assert colours.channel_window(6) == (0.0, 191.0)
    # a w1 pixel at its window's top is pure w1 blue, other channels off
    planes = np.zeros((6, 2, 2), np.uint8)
    planes[0] = 51
    rgb = colours.composite_rgb(planes, [1, 2, 3, 4, 5, 6])
    assert tuple(rgb[0, 0]) == (19, 0, 249)
    low, high = colours.confidence_rgb([0.0, 1.0])
    assert int(high.sum()) > int(low.sum())  # the ramp brightens with confidence
    assert tuple(colours.confidence_rgb(np.nan)) == colours.UNKNOWN_RGB


def test_colormap_resource_matches_method_notes() -> None:
    from deepnoise_engine.resources import resource_path

    table = json.loads(resource_path("colormaps", "rxrx1_channels.json").read_text())
    assert [table["channels"][str(c)]["window"][1] for c in range(1, 7)] == [
        51, 107, 64, 191, 89, 191]
