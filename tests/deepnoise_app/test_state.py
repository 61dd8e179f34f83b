"""AppState, settings and colours: Qt-free parts of the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepnoise_app import colours
from deepnoise_app.settings import MAX_RECENT, Settings
from deepnoise_app.state import AppState, prediction_from_row, state_for

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


def test_prediction_from_row_unknown_truth() -> None:
    row = pd.Series({"well": "B02", "sirna": "5", "confidence": 0.4, "sirna_true": pd.NA,
                     "correct": pd.NA, "sirna_raw": "6", "prob_raw": 0.3})
    pred = prediction_from_row(row)
    assert pred["sirna"] == "5" and pred["correct"] is None and pred["sirna_true"] is None
    assert prediction_from_row(row, "raw")["sirna"] == "6"


def test_state_for_is_one_per_viewer() -> None:
    class Viewer:  # any weak-referenceable object stands for a viewer here
        pass

    a, b = Viewer(), Viewer()
    assert state_for(a) is state_for(a)
    assert state_for(a) is not state_for(b)


def test_settings_recent_screens_atomic(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "settings.json"
    settings = Settings(path)
    for i in range(MAX_RECENT + 3):
        settings.add_recent_screen(tmp_path / f"screen{i}")
    settings.add_recent_screen(tmp_path / "screen5")  # moves to the front, no duplicate
    recent = Settings(path).recent_screens
    assert len(recent) == MAX_RECENT
    assert recent[0] == str((tmp_path / "screen5").resolve())
    assert len(set(recent)) == len(recent)
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp files left
    # a damaged file is kept aside and defaults are used
    path.write_text("{not json")
    assert Settings(path).recent_screens == []
    assert (path.parent / "settings.json.bad").read_text() == "{not json"


def test_channel_colours_and_composite() -> None:
    assert colours.channel_rgb(1) == (19, 0, 249)
    assert colours.channel_window(2) == (0.0, 107.0)
    assert colours.channel_window(6) == (0.0, 191.0)
    cmap = colours.channel_colormap(3)
    end = cmap.map(np.array([1.0]))[0]
    np.testing.assert_allclose(end[:3], np.array([255, 0, 25]) / 255, atol=1e-6)
    np.testing.assert_allclose(cmap.map(np.array([0.0]))[0][:3], 0, atol=1e-6)
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
