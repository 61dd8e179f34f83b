"""The plate map's colour modes (Qt-free): a fill colour per well and the legend's swatches."""

from __future__ import annotations

from deepnoise_app.models import colours
from deepnoise_app.models.predictions import WellPrediction
from deepnoise_app.models.state import AppState
from deepnoise_engine.screen.model import Plate, Well

#: Colour modes: key -> label shown in the combo box.
COLOUR_MODES: dict[str, str] = {
    "type": "Well type",
    "confidence": "Confidence",
    "correct": "Right / wrong",
    "changed": "Changed by balancing",
}

RGB = tuple[int, int, int]
NO_DATA_RGB: RGB = (88, 92, 100)  # a used well without a value in the current mode


def well_is_missing(well: Well) -> bool:
    """No usable site at all (missing images): drawn grey and hatched."""
    return not well.usable_sites


def prediction_colour(prediction: WellPrediction, mode: str) -> RGB | None:
    """A predicted well's colour in a prediction mode (None: no value for this mode)."""
    if mode == "confidence":
        conf = prediction["confidence"]
        if conf is None:
            return None
        r, g, b = (int(v) for v in colours.confidence_rgb(conf))
        return r, g, b
    if mode == "correct":
        correct = prediction["correct"]
        return None if correct is None else (colours.CORRECT_RGB if correct
                                             else colours.WRONG_RGB)
    if mode == "changed":
        changed = prediction["changed"]
        return None if changed is None else (colours.CHANGED_RGB if changed
                                             else colours.UNCHANGED_RGB)
    raise ValueError(f"unknown colour mode {mode!r}")


def well_colours(plate: Plate, mode: str, state: AppState) -> dict[str, RGB | None]:
    """Fill colour of every used well of ``plate`` in ``mode``; None = no data for this mode."""
    out: dict[str, RGB | None] = {}
    for name, well in plate.wells.items():
        if mode == "type":
            out[name] = colours.WELL_TYPE_RGB.get(well.well_type.value, colours.UNKNOWN_RGB)
            continue
        pred = state.well_prediction(name, plate)
        out[name] = None if pred is None else prediction_colour(pred, mode)
    return out


def legend_items(mode: str) -> list[tuple[str, RGB]]:
    """Swatches (label, colour) of a discrete colour mode; none for 'confidence' (a bar)."""
    if mode == "type":
        items = [(k.replace("_", " ").replace("control", "ctrl"), v)
                 for k, v in colours.WELL_TYPE_RGB.items() if k != "empty"]
    elif mode == "correct":
        items = [("right", colours.CORRECT_RGB), ("wrong", colours.WRONG_RGB)]
    elif mode == "changed":
        items = [("changed", colours.CHANGED_RGB), ("kept", colours.UNCHANGED_RGB)]
    else:
        return []
    return [*items, ("no data", NO_DATA_RGB)]
