"""AppState (Qt-free): selection signals, predictions from a score folder, modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnoise_app.models.state import AppState

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


def _record(state: AppState) -> list[tuple[str, object]]:
    events: list[tuple[str, object]] = []
    state.screen_changed.connect(lambda s: events.append(("screen", s)))
    state.plate_changed.connect(lambda p: events.append(("plate", p.key if p else None)))
    state.well_changed.connect(lambda w: events.append(("well", w.name if w else None)))
    state.predictions_changed.connect(lambda: events.append(("predictions", None)))
    state.prediction_mode_changed.connect(lambda m: events.append(("mode", m)))
    return events


def test_selection_signals_and_well_kept_across_plates(small_screen) -> None:
    state = AppState()
    events = _record(state)
    state.set_screen(small_screen)
    assert events[0] == ("screen", small_screen)
    plates = list(small_screen.plates())
    state.select_plate(plates[0].experiment, plates[0].index)
    state.select_well("B02")
    assert state.well is plates[0].wells["B02"]
    events.clear()
    # the next plate also has B02: the selection follows the well name
    state.select_plate(plates[1].experiment, plates[1].index)
    assert events == [("plate", plates[1].key), ("well", "B02")]
    assert state.well is plates[1].wells["B02"]
    # selecting the same well again emits nothing
    events.clear()
    state.select_well("B02")
    assert events == []
    with pytest.raises(KeyError, match="no well A01"):
        state.select_well("A01")  # the demo skips the edge wells
    with pytest.raises(KeyError):
        state.select_plate("NOPE-01", 1)


def test_predictions_from_score_folder(small_screen, prediction_frame, tmp_path: Path) -> None:
    plate = next(small_screen.plates())
    first, second = (w.name for w in plate.used_wells()[:2])
    frame = prediction_frame(plate, {first: 0.9}, wrong={second}, changed={second})
    folder = tmp_path / "scores"
    folder.mkdir()
    frame.to_csv(folder / f"{plate.experiment}_Plate{plate.index}.csv", index=False)
    (folder / "summary.json").write_text("{}")  # other files in the folder are ignored
    state = AppState()
    state.set_screen(small_screen)
    events = _record(state)
    assert state.load_predictions(folder) == 1
    assert ("predictions", None) in events
    assert list(state.predictions) == [plate.key]
    assert state.score_dir == folder
    b02 = state.well_prediction(first, plate)
    assert b02["sirna"] == plate.wells[first].sirna
    assert b02["confidence"] == pytest.approx(0.9)
    assert b02["correct"] is True
    assert b02["top"][0] == (b02["sirna"], pytest.approx(0.9))
    b03 = state.well_prediction(second, plate)
    assert b03["sirna"] == "9999" and b03["correct"] is False and b03["changed"] is True
    state.set_prediction_mode("raw")
    assert events[-1] == ("mode", "raw")
    assert state.well_prediction(second, plate)["sirna"] == "8888"
    with pytest.raises(ValueError, match="prediction mode"):
        state.set_prediction_mode("sideways")
    # a new screen drops predictions that belonged to the old one
    state.set_screen(small_screen)
    assert state.predictions == {} and state.well_prediction(first, plate) is None


def test_bad_score_folder_names_the_file(tmp_path: Path) -> None:
    state = AppState()
    with pytest.raises(FileNotFoundError, match="score folder"):
        state.load_predictions(tmp_path / "absent")
    bad = tmp_path / "HEPG2-01_Plate1.csv"
    bad.write_text("id_code,experiment\nx,y\n")
    with pytest.raises(ValueError, match=r"HEPG2-01_Plate1\.csv"):
        state.load_predictions(tmp_path)


def test_go_to_well_selects_plate_and_well(small_screen) -> None:
    state = AppState()
    state.set_screen(small_screen)
    plate = list(small_screen.plates())[1]
    well = plate.used_wells()[0]
    assert state.go_to_well(plate.experiment, plate.index, well.name) is well
    assert state.plate is plate
    with pytest.raises(KeyError):
        state.go_to_well(plate.experiment, plate.index, "Z99")
