"""The mosaic's calls (Qt-free): a marker and a label per predicted well, readable on its tile.

Labels are white on a darkened band of the tile (``LABEL_BOX``): napari text has no outline
or background box, and black or white alone left some labels unreadable on mixed tiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepnoise_app.models.captions import correct_word
from deepnoise_app.models.state import AppState
from deepnoise_app.models.thumbnails import PlateThumbnails, tile_origin
from deepnoise_engine.screen.model import Plate

#: the calls layer's features (one row per predicted well)
CALL_COLUMNS = ["well", "sirna", "confidence", "correct", "text_colour"]
#: what a marker gets before its features arrive (napari adds points with these values)
CALL_DEFAULTS = {"well": "", "sirna": "", "confidence": 0.0, "correct": "",
                 "text_colour": "white"}


#: the called siRNA's label sits in this part of a tile (fractions of the thumbnail size)
LABEL_BOX = (0.62, 0.95, 0.0, 0.5)  # y0, y1, x0, x1


LABEL_SHADE = 0.3  # a called well's label box is darkened to this share of its brightness


def shaded_label_box(thumbnail: np.ndarray) -> np.ndarray:
    """``thumbnail`` with its label box darkened: white text reads on any tile (napari text
    has no outline; black or white alone left some labels unreadable on mixed tiles)."""
    out = thumbnail.copy()
    t = thumbnail.shape[0]
    y0, y1, x0, x1 = (round(f * t) for f in LABEL_BOX)
    out[y0:y1, x0:x1] = (out[y0:y1, x0:x1] * LABEL_SHADE).astype(np.uint8)
    return out


def shade_label_boxes(image: np.ndarray, plate: Plate, wells: list[str], t: int) -> np.ndarray:
    """The mosaic ``image`` with the label boxes of ``wells`` darkened (a copy when any)."""
    if not wells:
        return image
    out = image.copy()
    y0, y1, x0, x1 = (round(f * t) for f in LABEL_BOX)
    for name in wells:
        well = plate.wells.get(name)
        if well is None:
            continue
        y, x = tile_origin(well.row, well.column, t)
        box = out[y + y0:y + y1, x + x0:x + x1]
        box[...] = (box * LABEL_SHADE).astype(np.uint8)
    return out


def label_colour(thumbnail: np.ndarray | None) -> str:
    """Text colour that reads on ``thumbnail (T, T, 3)`` under the label: black on bright
    pixels, white on dark ones (napari text has no outline or background box)."""
    if thumbnail is None:
        return "white"
    t = thumbnail.shape[0]
    y0, y1, x0, x1 = (round(f * t) for f in LABEL_BOX)
    box = thumbnail[y0:y1, x0:x1].astype(np.float32)
    luma = float((box @ np.array([0.299, 0.587, 0.114], np.float32)).mean()) if box.size else 0.0
    return "black" if luma > 120.0 else "white"


def call_features(
    plate: Plate, state: AppState, size: int, thumbs: PlateThumbnails | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Marker positions ``(N, 2)`` (y, x in mosaic pixels) and their features table.

    Only wells with a prediction get a marker; columns: well, sirna, confidence, correct,
    text_colour (black or white, whichever reads on the tile under the label).
    """
    images = {name: thumbs.images[i] for name, i in thumbs.index().items()} if thumbs else {}
    rows, coords = [], []
    for well in plate.used_wells():
        pred = state.well_prediction(well.name, plate)
        if pred is None or pred["sirna"] is None:
            continue
        y, x = tile_origin(well.row, well.column, size)
        coords.append((y + size * 0.14, x + size * 0.14))
        conf = pred["confidence"]
        rows.append({
            "well": well.name,
            "sirna": str(pred["sirna"]),
            "confidence": float(conf) if conf is not None else 0.0,
            "correct": correct_word(pred["correct"]) or "",
            "text_colour": label_colour(
                shaded_label_box(images[well.name]) if well.name in images else None),
        })
    return np.array(coords, dtype=float).reshape(-1, 2), typed_calls(rows)


def typed_calls(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The calls table with its dtypes fixed, also when it is empty: an empty frame of
    object columns made napari give new markers a confidence of None, which its
    colormap cannot map (a plate without predictions, then one with)."""
    frame = pd.DataFrame(rows, columns=CALL_COLUMNS)
    return frame.astype({c: float if c == "confidence" else object for c in CALL_COLUMNS})


def label_translation(tile: int) -> list[float]:
    """Offset of a call's label from its marker: into the tile's lower left part."""
    return [tile * 0.62, -tile * 0.08]
