"""The review queue in a real napari window: ranking, walking with clicks and arrow keys,
decisions saved atomically, reloaded, and exported as per-plate CSV columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from qc_fixtures import write_score_folder
from qtpy.QtCore import Qt

from deepnoise_app.docks import install_docks
from deepnoise_app.models.screen_opening import open_screen_path
from deepnoise_app.state import state_for
from deepnoise_engine.report.export import export_reports

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


@pytest.fixture
def opened(make_napari_viewer, qtbot, small_screen_path: Path, prediction_frame,
           tmp_path: Path):
    viewer = make_napari_viewer(show=True)
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    open_screen_path(state, small_screen_path)
    first = next(state.screen.plates())
    low, both = (w.name for w in first.used_wells()[3:5])
    scores = write_score_folder(state.screen, tmp_path / "scores", prediction_frame,
                                confidence={first.key: {low: 0.05, both: 0.2}},
                                changed={both})
    state.load_predictions(scores)
    docks.dock_widgets["review"].show()
    review = docks.dock_widgets["review"].widget()
    qtbot.waitUntil(lambda: review.table.rowCount() > 0, timeout=10_000)
    return viewer, state, docks, review, first, both


def test_queue_ranks_wells_by_reasons(opened) -> None:
    _viewer, _state, _docks, review, first, both = opened
    queue = review.queue
    top = queue.iloc[0]
    # on the first plate: low confidence and changed by balancing (two reasons)
    assert top["id_code"] == first.wells[both].id_code
    assert top["why"] == "low confidence, changed by balancing"
    disagree = queue[queue["models disagree"]]
    assert len(disagree) == 5  # the fixture's second model calls otherwise for five wells
    assert (queue["reasons"].diff().dropna() <= 0).all()  # most reasons first


def test_click_arrow_keys_decide_note_reload_and_export(opened, qtbot, tmp_path) -> None:
    _viewer, state, docks, review, first, _both = opened
    table = review.table
    rect = table.visualItemRect(table.item(0, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    first_id = review.shown.iloc[0]["id_code"]
    assert state.well.id_code == first_id and state.plate.key == first.key
    qtbot.waitUntil(lambda: docks.well_viewer.loaded_well == state.well.name, timeout=10_000)
    assert "top 5: " in review.details.text() and "0.10" in review.details.text()
    qtbot.keyClick(table, Qt.Key.Key_Down)
    second_id = review.shown.iloc[1]["id_code"]
    assert state.well.id_code == second_id
    qtbot.keyClick(table, Qt.Key.Key_Up)
    assert state.well.id_code == first_id
    qtbot.mouseClick(review.reject_button, Qt.MouseButton.LeftButton)  # saves, moves on
    assert state.well.id_code == second_id
    qtbot.keyClick(table, Qt.Key.Key_A)  # the A shortcut accepts
    review.select_index(1)
    review.note.setFocus()
    qtbot.keyClicks(review.note, "blurry site")
    qtbot.keyClick(review.note, Qt.Key.Key_Return)
    saved = pd.read_csv(state.score_dir / "review.csv", dtype=str, keep_default_na=False)
    decided = saved.set_index("id_code")
    assert decided.loc[first_id, "decision"] == "rejected"
    assert decided.loc[second_id, "decision"] == "accepted"
    assert decided.loc[second_id, "note"] == "blurry site"
    assert not list(state.score_dir.glob(".review.csv.tmp*"))  # atomic: no temp left
    # opened again: the decisions come back
    state.load_predictions(state.score_dir)
    qtbot.waitUntil(lambda: review.table.rowCount() > 0 and review._decision_of(first_id)
                    == "rejected", timeout=5000)
    review.state_filter.setCurrentText("accepted")
    assert list(review.shown["id_code"]) == [second_id]
    # the engine's export adds the decisions to the per-plate CSVs
    files = export_reports(state.score_dir, tmp_path / "export", submission=False)
    exported = pd.concat(pd.read_csv(f, dtype=str, keep_default_na=False) for f in files)
    rows = exported.set_index("id_code")
    assert rows.loc[first_id, "review_decision"] == "rejected"
    assert rows.loc[second_id, "review_note"] == "blurry site"
    assert (rows.drop(index=[first_id, second_id])["review_decision"] == "").all()



def test_plugin_widgets_in_plain_napari(make_napari_viewer, qtbot, small_screen_path: Path,
                                        prediction_frame, tmp_path: Path) -> None:
    viewer = make_napari_viewer(show=True)  # docks load their data only while shown
    _dock, qc = viewer.window.add_plugin_dock_widget("deepnoise", "QC map")
    _dock, review = viewer.window.add_plugin_dock_widget("deepnoise", "Review queue")
    state = state_for(viewer)
    assert qc.state is review.state is state
    open_screen_path(state, small_screen_path)
    state.load_predictions(write_score_folder(state.screen, tmp_path / "scores",
                                              prediction_frame))
    qtbot.waitUntil(lambda: qc.points is not None and review.table.rowCount() > 0,
                    timeout=15_000)
    assert len(qc.points) == len(review.queue)
