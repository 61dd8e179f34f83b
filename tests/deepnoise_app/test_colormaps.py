"""napari colormaps made from the colour tables."""

from __future__ import annotations

import numpy as np

from deepnoise_app.colormaps import channel_colormap


def test_channel_colormap_runs_black_to_the_channel_colour() -> None:
    cmap = channel_colormap(3)
    end = cmap.map(np.array([1.0]))[0]
    np.testing.assert_allclose(end[:3], np.array([255, 0, 25]) / 255, atol=1e-6)
    np.testing.assert_allclose(cmap.map(np.array([0.0]))[0][:3], 0, atol=1e-6)
