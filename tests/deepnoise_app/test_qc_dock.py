"""The QC dock in a real napari window: colours, hover, click to select, lasso, QC table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qc_fixtures import write_score_folder
from qtpy.QtCore import QPointF, Qt

from deepnoise_app.docks import install_docks
from deepnoise_app.models.qc_map import PALETTE, point_colours
from deepnoise_app.models.screen_opening import open_screen_path
from deepnoise_app.state import state_for

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


@pytest.fixture
def opened(make_napari_viewer, qtbot, small_screen_path: Path, prediction_frame,
           tmp_path: Path):
    viewer = make_napari_viewer(show=True)
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    open_screen_path(state, small_screen_path)
    scores = write_score_folder(state.screen, tmp_path / "scores", prediction_frame,
                                wrong={"B03"})
    state.load_predictions(scores)
    dock_widget = docks.dock_widgets["qc"]
    assert not dock_widget.isVisible()  # hidden until the user opens it
    dock_widget.show()
    qc = dock_widget.widget().content  # built on the first show
    qtbot.waitUntil(lambda: qc.points is not None, timeout=15_000)
    return viewer, state, docks, qc


def hover(widget, pos) -> None:
    """A real mouse-move event (QTest.mouseMove moves the X cursor, which Xvfb does not
    turn into a move event for the widget under it)."""
    from qtpy.QtCore import QEvent
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtWidgets import QApplication

    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), QPointF(widget.mapToGlobal(pos)),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def _screen_pos(qc, i: int):
    x, y = qc.points.xy[i]
    scene = qc.view.mapViewToScene(QPointF(x, y))
    return qc.plot.mapFromScene(scene)


def test_colour_choice_recolours_the_points(opened, qtbot) -> None:
    _viewer, state, _docks, qc = opened
    n = sum(len(p.used_wells()) for p in state.screen.plates())
    assert len(qc.points) == n
    brushes = lambda: [tuple(c) for c in qc.drawn_colours()]  # noqa: E731
    by_experiment = brushes()
    assert len(set(by_experiment)) == len(state.screen.experiments)
    qc.colour_by.setFocus()
    qtbot.keyClick(qc.colour_by, Qt.Key.Key_End)  # the keyboard picks the last: right/wrong
    assert qc.colour_by.currentText() == "right/wrong"
    right_wrong = brushes()
    assert right_wrong != by_experiment
    frame = qc.points.frame
    labelled = frame["sirna"].notna().to_numpy()
    wrong = frame["well"].eq("B03").to_numpy() & labelled
    assert wrong.any()
    assert {right_wrong[i] for i in np.flatnonzero(wrong)} == {(214, 39, 40)}  # red
    assert {right_wrong[i] for i in np.flatnonzero(~labelled)} == {(170, 170, 170)}
    assert "right" in qc.legend.text() and "wrong" in qc.legend.text()
    _codes, palette = point_colours(qc.points, "experiment")
    assert palette[0][1] == PALETTE[0]


def test_hover_names_and_click_selects_the_well(opened, qtbot) -> None:
    _viewer, state, docks, qc = opened
    frame = qc.points.frame
    target = int(np.flatnonzero((frame["experiment"] != state.plate.experiment).to_numpy())[3])
    pos = _screen_pos(qc, target)
    viewport = qc.plot.viewport()
    hover(viewport, pos)
    qtbot.waitUntil(lambda: frame.iloc[target]["id_code"] in qc.hover_label.text(),
                    timeout=3000)
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=pos)
    row = frame.iloc[target]
    qtbot.waitUntil(lambda: state.well is not None and state.well.id_code == row["id_code"],
                    timeout=3000)
    assert state.plate.experiment == row["experiment"]
    qtbot.waitUntil(lambda: docks.well_viewer.loaded_well == row["well"], timeout=10_000)
    assert len(qc.selected.data) == 1  # the ring marks the selected well


def test_lasso_lists_the_wells_inside(opened, qtbot) -> None:
    _viewer, state, _docks, qc = opened
    xy = qc.points.xy
    first = qc.points.frame["experiment"].to_numpy() == sorted(state.screen.experiments)[0]
    lo, hi = xy[first].min(axis=0), xy[first].max(axis=0)
    pad = (hi - lo) * 0.05 + 1e-3
    corners = [(lo[0] - pad[0], lo[1] - pad[1]), (hi[0] + pad[0], lo[1] - pad[1]),
               (hi[0] + pad[0], hi[1] + pad[1]), (lo[0] - pad[0], hi[1] + pad[1])]
    qtbot.mouseClick(qc.lasso_button, Qt.MouseButton.LeftButton)
    assert qc.view.lasso
    viewport = qc.plot.viewport()
    points = [qc.plot.mapFromScene(qc.view.mapViewToScene(QPointF(*c))) for c in corners]
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=points[0])
    for p in [*points[1:], points[0]]:
        qtbot.mouseMove(viewport, p)
        qtbot.wait(30)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=points[0])
    qtbot.waitUntil(lambda: qc.lasso_list.count() > 0, timeout=3000)
    inside = set(qc.lasso_rows.tolist())
    assert inside == set(np.flatnonzero(first).tolist())  # planted: experiments apart
    item = qc.lasso_list.item(0)
    rect = qc.lasso_list.visualItemRect(item)
    qtbot.mouseClick(qc.lasso_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    row = qc.points.frame.iloc[int(item.data(Qt.ItemDataRole.UserRole))]
    qtbot.waitUntil(lambda: state.well is not None and state.well.id_code == row["id_code"],
                    timeout=3000)


def test_qc_table_shows_the_report(opened, qtbot) -> None:
    from deepnoise_engine.qc.job import run_qc

    _viewer, state, _docks, qc = opened
    assert qc.table.rowCount() == 0 and qc.run_qc.text() == "Run QC"
    run_qc(state.score_dir, block=64)
    qc.reload()
    qtbot.waitUntil(lambda: qc.table.rowCount() == 5 and not qc.loading,
                    timeout=15_000)  # 3 profiles + 2 models; the map's worker done
    assert qc.table.item(0, 0).text() == "pixel statistics, raw"
    assert qc.table.item(2, 0).text() == "model embedding (ensemble)"
