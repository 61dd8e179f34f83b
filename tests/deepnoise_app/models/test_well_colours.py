"""Plate map colours (Qt-free): a colour per well and mode, the legend's swatches."""

from __future__ import annotations

import pytest

from deepnoise_app.models import colours
from deepnoise_app.models.state import AppState
from deepnoise_app.models.well_colours import NO_DATA_RGB, legend_items, well_colours


def test_each_mode_colours_what_it_says(small_screen, prediction_frame) -> None:
    state = AppState()
    state.set_screen(small_screen)
    plate = next(small_screen.plates())
    right, wrong = (w.name for w in plate.used_wells()[:2])
    by_type = well_colours(plate, "type", state)
    assert by_type[right] == colours.WELL_TYPE_RGB[plate.wells[right].well_type.value]
    assert set(well_colours(plate, "confidence", state).values()) == {None}  # no data yet
    state.set_predictions({plate.key: prediction_frame(plate, {right: 1.0}, wrong={wrong},
                                                       changed={wrong})})
    assert well_colours(plate, "correct", state)[right] == colours.CORRECT_RGB
    assert well_colours(plate, "correct", state)[wrong] == colours.WRONG_RGB
    assert well_colours(plate, "changed", state)[wrong] == colours.CHANGED_RGB
    confident = well_colours(plate, "confidence", state)[right]
    assert confident == tuple(int(v) for v in colours.confidence_rgb(1.0))
    with pytest.raises(ValueError, match="colour mode"):
        well_colours(plate, "sideways", state)


def test_legend_swatches_end_with_no_data() -> None:
    assert legend_items("correct") == [("right", colours.CORRECT_RGB),
                                       ("wrong", colours.WRONG_RGB), ("no data", NO_DATA_RGB)]
    assert legend_items("type")[0][0] == "treatment"
    assert legend_items("confidence") == []
