"""Colours: RxRx1 channel colours and windows, well-type colours, the confidence ramp.

Numpy only (no Qt, no napari: ``deepnoise_app.colormaps`` makes napari colormaps of these).
The channel colours and windows come from ``resources/colormaps/rxrx1_channels.json``
(method-notes: the official rxrx helper); channels beyond 6 get a fallback colour and a full
window.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np

from deepnoise_engine.resources import resource_path

#: Well type -> RGB (plate map "well type" mode).
WELL_TYPE_RGB: dict[str, tuple[int, int, int]] = {
    "treatment": (120, 144, 156),
    "positive_control": (230, 145, 56),
    "negative_control": (66, 133, 244),
    "empty": (200, 200, 200),
}
CORRECT_RGB = (46, 160, 67)
WRONG_RGB = (215, 58, 73)
UNKNOWN_RGB = (150, 150, 150)
CHANGED_RGB = (240, 140, 0)
UNCHANGED_RGB = (90, 110, 125)
UNUSED_RGB = (235, 235, 235)
PROBLEM_RGB = (170, 170, 170)
SELECTION_RGB = (255, 255, 255)

_FALLBACK_RGB = [(255, 255, 255), (255, 128, 0), (0, 128, 255), (128, 255, 128)]


@lru_cache(maxsize=1)
def _channel_table() -> dict[int, dict[str, Any]]:
    data = json.loads(resource_path("colormaps", "rxrx1_channels.json").read_text("utf-8"))
    return {int(k): v for k, v in data["channels"].items()}


def known_channels() -> list[int]:
    """The channels with a colour preset (RxRx1's six): the layers made before any screen."""
    return sorted(_channel_table())


def channel_rgb(channel: int) -> tuple[int, int, int]:
    """Display colour (0-255) of a 1-based channel."""
    entry = _channel_table().get(int(channel))
    if entry is None:
        return _FALLBACK_RGB[(int(channel) - 1) % len(_FALLBACK_RGB)]
    r, g, b = entry["rgb"]
    return int(r), int(g), int(b)


def channel_window(channel: int) -> tuple[float, float]:
    """Intensity window (contrast limits, raw uint8 units) of a 1-based channel."""
    entry = _channel_table().get(int(channel))
    if entry is None:
        return 0.0, 255.0
    lo, hi = entry["window"]
    return float(lo), float(hi)


def channel_label(channel: int) -> str:
    """'w1 nuclei' style layer name."""
    entry = _channel_table().get(int(channel))
    return f"w{channel} {entry['name']}" if entry else f"w{channel}"




def composite_rgb(planes: np.ndarray, channels: list[int]) -> np.ndarray:
    """Additive colour composite: ``(C, H, W)`` uint8 -> ``(H, W, 3)`` uint8.

    Each channel is scaled by its window and tinted with its colour, like napari's additive
    blending of the well viewer's layers, so the mosaic looks like the well view.
    """
    if planes.ndim != 3 or planes.shape[0] != len(channels):
        raise ValueError(f"planes {planes.shape} do not match channels {channels}")
    out = np.zeros((*planes.shape[1:], 3), dtype=np.float32)
    for plane, channel in zip(planes, channels, strict=True):
        lo, hi = channel_window(channel)
        scaled = np.clip((plane.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        out += scaled[..., None] * (np.array(channel_rgb(channel), dtype=np.float32))
    return np.clip(out, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def confidence_stops() -> tuple[np.ndarray, np.ndarray]:
    """The confidence ramp's stops: positions in [0, 1] and their RGB (0-255) colours."""
    data = json.loads(resource_path("colormaps", "confidence.json").read_text("utf-8"))
    pos = np.array([s[0] for s in data["stops"]], dtype=np.float64)
    rgb = np.array([s[1] for s in data["stops"]], dtype=np.float64)
    return pos, rgb


def confidence_rgb(values: float | np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] -> RGB 0-255 (``(..., 3)`` uint8), NaN -> grey."""
    pos, rgb = confidence_stops()
    v = np.asarray(values, dtype=np.float64)
    clipped = np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0)
    out = np.stack([np.interp(clipped, pos, rgb[:, i]) for i in range(3)], axis=-1)
    out[np.isnan(v)] = UNKNOWN_RGB
    return np.round(out).astype(np.uint8)

