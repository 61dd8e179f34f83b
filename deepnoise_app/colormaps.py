"""napari colormaps and layer data made from the Qt-free colour tables (``models.colours``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepnoise_app.models.colours import (
    channel_label,
    channel_rgb,
    channel_window,
    confidence_stops,
)

#: the channel layers' tag (``metadata["deepnoise"]``): the well viewer reuses tagged layers
CHANNEL_LAYER_TAG = "deepnoise-well"


def channel_colormap(channel: int) -> Any:
    """napari Colormap from black to the channel's colour, named 'deepnoise-w<N>'."""
    from napari.utils.colormaps import Colormap

    r, g, b = channel_rgb(channel)
    return Colormap(
        colors=np.array([[0, 0, 0, 1], [r / 255, g / 255, b / 255, 1]], dtype=np.float32),
        name=f"deepnoise-w{channel}",
        display_name=f"DeepNoise w{channel}",
    )


def confidence_colormap() -> Any:
    """The confidence ramp as a napari Colormap (for the mosaic overlay's face colours)."""
    from napari.utils.colormaps import Colormap

    pos, rgb = confidence_stops()
    colors = np.concatenate([rgb / 255.0, np.ones((len(pos), 1))], axis=1)
    return Colormap(colors=colors, controls=pos, name="deepnoise-confidence")


def channel_layer_data(
    planes: np.ndarray, channels: list[int]
) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """napari layer data tuples for a site's channels, tagged so the WellViewer reuses them."""
    return [
        (
            planes[i],
            {
                "name": channel_label(c),
                "colormap": channel_colormap(c),
                "contrast_limits": channel_window(c),
                "blending": "additive",
                "metadata": {"deepnoise": CHANNEL_LAYER_TAG, "channel": c},
            },
            "image",
        )
        for i, c in enumerate(channels)
    ]
