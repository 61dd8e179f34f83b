"""Captions (Qt-free): what the docks and the canvas say about plates, wells and calls."""

from __future__ import annotations

from deepnoise_app.models.captions import (
    fitting_plate_name,
    mosaic_caption,
    mosaic_status,
    plate_map_title,
    plate_names,
    review_details,
    well_caption,
    well_header,
    well_messages,
    well_tooltip,
    wrap_caption,
)
from deepnoise_app.models.state import AppState


def test_tooltip_lists_the_call_and_top3(small_screen, prediction_frame) -> None:
    state = AppState()
    state.set_screen(small_screen)
    plate = next(small_screen.plates())
    well = plate.used_wells()[0]
    state.set_predictions({plate.key: prediction_frame(plate, {well.name: 0.8})})
    text = well_tooltip(plate, well, well.name, state.well_prediction(well.name, plate),
                        state.prediction_mode)
    assert well.name in text and well.well_type.value.replace("_", " ") in text
    assert f"true siRNA: {well.sirna}" in text
    assert f"predicted (balanced): {well.sirna}, confidence 0.80 (right)" in text
    assert "top-3:" in text and "7 0.10" in text
    assert "not used" in well_tooltip(plate, None, "A01", None, "balanced")


def test_plate_names_shorten_to_what_fits(small_screen) -> None:
    plate = next(small_screen.plates())
    full, short, shortest = plate_names(plate)
    assert full == f"{plate.experiment} plate {plate.index}"
    assert (short, shortest) == (f"Plate {plate.index}", f"P{plate.index}")
    assert fitting_plate_name(plate, lambda text: len(text) <= 8) == short
    assert fitting_plate_name(plate, lambda text: False) == shortest
    assert plate_map_title(plate).startswith(f"<b>{full}</b> - 8 x 12, ")
    assert mosaic_caption(plate, 60) == f"{full} - mosaic of 60 wells (first usable site)"
    assert mosaic_status(plate, 60, 2, 0.5) == (
        f"{plate.key}: 60 wells, 2 without pixels (striped) in 0.50 s. "
        "Click selects, double-click opens.")


def test_well_caption_names_the_call_and_the_truth(small_screen, prediction_frame) -> None:
    state = AppState()
    state.set_screen(small_screen)
    plate = next(small_screen.plates())
    right, wrong = plate.used_wells()[:2]
    state.set_predictions({plate.key: prediction_frame(plate, {right.name: 0.8},
                                                       wrong={wrong.name})})
    text = well_caption(plate, right, state.well_prediction(right.name, plate))
    kind = right.well_type.value.replace("_", " ")
    assert text == (f"{plate.experiment} plate {plate.index} {right.name} ({kind})"
                    f"  predicted {right.sirna} (0.80)  right  true {right.sirna}")
    assert "predicted 9999 (0.50)  wrong" in well_caption(
        plate, wrong, state.well_prediction(wrong.name, plate))
    assert well_caption(plate, right, None).endswith(f"({kind})  true {right.sirna}")
    assert well_caption(None, right, None) == ""


def test_well_header_and_messages(small_screen) -> None:
    well = next(small_screen.plates()).used_wells()[0]
    assert well_header(well, [1, 2]) == f"<b>{well.name}</b> - site(s) 1, 2"
    assert well_header(well, []).endswith("site(s) none")
    assert well_messages(well, {3: "file missing"}, [1]) == ["w3 missing: file missing"]
    assert well_messages(well, {}, []) == [f"{well.name} has no such site."]


def test_wrap_caption_fits_the_canvas() -> None:
    text = "HEPG2-01 plate 1 B02 (treatment)  predicted 1138 (0.42)  right  true 1138"
    assert wrap_caption(text, None) == text
    lines = wrap_caption(text, 200).split("\n")
    assert len(lines) > 1 and all(len(line) <= 21 for line in lines)
    assert " ".join(lines).split() == text.split()


def test_review_details_name_the_call_top5_and_reasons() -> None:
    prediction = {"sirna": "5", "confidence": 0.4, "sirna_true": "6", "correct": False,
                  "changed": None, "top": [("5", 0.4), ("6", 0.3)]}
    assert review_details("HEPG2-01_1_B02", prediction, "low confidence") == (
        "HEPG2-01_1_B02: call 5 (true 6)\ntop 5: 5 0.40, 6 0.30\nwhy: low confidence")
    assert review_details("X", None, "") == "X: call None\ntop 5: none\nwhy: no flag"
