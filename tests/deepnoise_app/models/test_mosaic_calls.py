"""The mosaic's calls (Qt-free): label colours, shaded label boxes, the calls table."""

from __future__ import annotations

import numpy as np
import pytest

from deepnoise_app.models.mosaic_calls import (
    CALL_COLUMNS,
    LABEL_BOX,
    call_features,
    label_colour,
    shaded_label_box,
    typed_calls,
)
from deepnoise_app.models.state import AppState
from deepnoise_app.models.thumbnails import tile_origin


def test_mosaic_label_colour_reads_on_the_tile() -> None:
    t = 40
    dark = np.full((t, t, 3), 20, np.uint8)
    bright = dark.copy()
    y0, y1, x0, x1 = (round(f * t) for f in LABEL_BOX)
    bright[y0:y1, x0:x1] = (250, 200, 240)  # bright cells exactly under the label
    assert label_colour(dark) == "white"
    assert label_colour(bright) == "black"
    elsewhere = dark.copy()
    elsewhere[:y0] = 255  # bright pixels outside the label's box do not matter
    assert label_colour(elsewhere) == "white"
    assert label_colour(None) == "white"



def test_shaded_label_box_darkens_only_the_label() -> None:
    t = 20
    tile = np.full((t, t, 3), 200, np.uint8)
    shaded = shaded_label_box(tile)
    y0, y1, x0, x1 = (round(f * t) for f in LABEL_BOX)
    assert (shaded[y0:y1, x0:x1] == 60).all()
    assert (shaded[:y0] == 200).all()
    assert label_colour(shaded) == "white"


def test_calls_table_is_typed_when_empty() -> None:
    empty = typed_calls([])
    assert list(empty.columns) == CALL_COLUMNS
    assert empty["confidence"].dtype == float


def test_call_features_mark_predicted_wells(small_screen, prediction_frame) -> None:
    plate = next(small_screen.plates())
    first, second = (w.name for w in plate.used_wells()[:2])
    state = AppState()
    state.set_screen(small_screen)
    state.set_predictions({plate.key: prediction_frame(plate, {first: 0.9}, wrong={second})})
    coords, features = call_features(plate, state, 32)
    assert len(coords) == len(features) == len(plate.used_wells())
    row = features.set_index("well").loc[first]
    assert row["confidence"] == pytest.approx(0.9) and row["correct"] == "right"
    assert features.set_index("well").loc[second, "correct"] == "wrong"
    well = plate.wells[first]
    y, x = tile_origin(well.row, well.column, 32)
    i = list(features["well"]).index(first)
    assert tuple(coords[i]) == pytest.approx((y + 32 * 0.14, x + 32 * 0.14))
