"""Plate map widget: colour modes as drawn, tooltips, mouse and keyboard selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from deepnoise_app.models import colours
from deepnoise_app.models.plate_grid import next_well
from deepnoise_app.models.state import AppState
from deepnoise_app.plate_map import PlateMapDock
from deepnoise_app.screen_browser import ScreenBrowser
from deepnoise_engine.screen import open_screen

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


def _pixel(widget, rect) -> tuple[int, int, int]:
    image = widget.grab().toImage()
    colour = image.pixelColor(rect.center().toPoint())
    return colour.red(), colour.green(), colour.blue()


def _grab_array(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB32)
    ptr = image.constBits()
    return np.frombuffer(ptr, np.uint8, count=image.sizeInBytes()).reshape(
        image.height(), image.bytesPerLine() // 4, 4)[:, : image.width(), :3].copy()


@pytest.fixture
def dock(qtbot, small_screen, prediction_frame):
    state = AppState()
    state.set_screen(small_screen)
    plate = next(small_screen.plates())
    state.select_plate(plate.experiment, plate.index)
    widget = PlateMapDock(state)
    widget.resize(520, 420)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_colour_modes_draw_what_they_say(dock, prediction_frame, tmp_path: Path) -> None:
    state, plate, pmap = dock.state, dock.state.plate, dock.map
    used = plate.used_wells()
    treat = next(w for w in used if w.well_type.value == "treatment")
    ctrl = next(w for w in used if w.well_type.is_control)
    other = next(w for w in used if w.well_type.value == "treatment" and w is not treat)
    # well type mode
    assert _pixel(pmap, pmap.well_rect(plate.key, treat.name)) == colours.WELL_TYPE_RGB[
        "treatment"]
    assert _pixel(pmap, pmap.well_rect(plate.key, ctrl.name)) == colours.WELL_TYPE_RGB[
        ctrl.well_type.value]
    shots = {"type": pmap.grab().toImage()}
    # predictions set by hand: confidence 0.95 for one treatment well, 0.05 for another
    frame = prediction_frame(plate, {treat.name: 0.95, other.name: 0.05}, wrong={other.name},
                             changed={treat.name})
    state.set_predictions({plate.key: frame})
    dock.set_mode("confidence")
    hi = _pixel(pmap, pmap.well_rect(plate.key, treat.name))
    lo = _pixel(pmap, pmap.well_rect(plate.key, other.name))
    assert hi == tuple(int(v) for v in colours.confidence_rgb(0.95))
    assert lo == tuple(int(v) for v in colours.confidence_rgb(0.05))
    shots["confidence"] = pmap.grab().toImage()
    dock.set_mode("correct")
    assert _pixel(pmap, pmap.well_rect(plate.key, treat.name)) == colours.CORRECT_RGB
    assert _pixel(pmap, pmap.well_rect(plate.key, other.name)) == colours.WRONG_RGB
    shots["correct"] = pmap.grab().toImage()
    dock.set_mode("changed")
    assert _pixel(pmap, pmap.well_rect(plate.key, treat.name)) == colours.CHANGED_RGB
    assert _pixel(pmap, pmap.well_rect(plate.key, other.name)) == colours.UNCHANGED_RGB
    shots["changed"] = pmap.grab().toImage()
    keys = list(shots)
    for i, a in enumerate(keys):  # every mode looks different
        for b in keys[i + 1 :]:
            assert shots[a] != shots[b], (a, b)
    for key, image in shots.items():
        image.save(str(tmp_path / f"plate_map_{key}.png"))
    # raw / balanced follows the state; the raw call of treat differs (it was "changed")
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findData("raw"))
    assert state.prediction_mode == "raw"
    state.set_prediction_mode("balanced")
    assert dock.prediction_combo.currentData() == "balanced"


def test_no_predictions_says_so(dock) -> None:
    dock.set_mode("confidence")
    plate = dock.state.plate
    well = plate.used_wells()[0]
    # wells without data are drawn in the neutral "no data" colour, not a ramp colour
    assert _pixel(dock.map, dock.map.well_rect(plate.key, well.name)) == (88, 92, 100)



def test_click_and_arrow_keys_select(dock, qtbot) -> None:
    state, plate, pmap = dock.state, dock.state.plate, dock.map
    used = plate.used_wells()
    target = used[3]
    rect = pmap.well_rect(plate.key, target.name)
    qtbot.mouseClick(pmap, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    assert state.well is target
    # the selection is drawn: a white frame at the well's edge
    edge = _grab_array(pmap)[int(rect.top()) + 1, int(rect.center().x())]
    assert tuple(edge) == colours.SELECTION_RGB
    for key, step in ((Qt.Key.Key_Right, (0, 1)), (Qt.Key.Key_Down, (1, 0)),
                      (Qt.Key.Key_Left, (0, -1)), (Qt.Key.Key_Up, (-1, 0))):
        before = state.well
        expected = next_well(plate, before, step)
        qtbot.keyClick(pmap, key)
        assert state.well is (plate.wells[expected] if expected else before)
    # skipping unused positions: from the first used well, Up leaves the plate -> stays
    state.select_well(used[0].name)
    qtbot.keyClick(pmap, Qt.Key.Key_Up)
    assert state.well is used[0]
    # clicking an unused position selects nothing
    empty = QPoint(int(pmap.well_rect(plate.key, used[0].name).center().x()),
                   int(pmap.well_rect(plate.key, used[0].name).top() - 3))
    qtbot.mouseClick(pmap, Qt.MouseButton.LeftButton, pos=empty)
    assert state.well is used[0]


def test_side_by_side_selects_across_plates(dock, qtbot) -> None:
    state = dock.state
    first = state.plate
    exp = state.screen.experiments[first.experiment]
    dock.side_by_side.setChecked(True)
    assert [p.key for p in dock.map.plates] == [exp.plates[i].key for i in sorted(exp.plates)]
    second = exp.plates[sorted(exp.plates)[1]]
    well = second.used_wells()[2]
    rect = dock.map.well_rect(second.key, well.name)
    qtbot.mouseClick(dock.map, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    assert state.plate is second and state.well is well


def test_side_by_side_uses_the_best_grid_and_short_titles(dock) -> None:
    from qtpy.QtGui import QFontMetrics

    from deepnoise_app.plate_map import plate_title

    pmap = dock.map
    exp = dock.state.screen.experiments[dock.state.plate.experiment]
    assert len(exp.plates) >= 2
    dock.side_by_side.setChecked(True)
    plates = [exp.plates[i] for i in sorted(exp.plates)]

    def rects() -> list:
        return [pmap.well_rect(p.key, p.used_wells()[0].name) for p in plates]

    pmap.setFixedSize(150 * len(plates), 160)  # wide and short: all plates in one row
    assert len({round(r.top()) for r in rects()}) == 1
    pmap.setFixedSize(260, 150 * len(plates))  # narrow and tall: one plate per row
    assert len({round(r.top()) for r in rects()}) == len(plates)
    side_by_side_cell = (260 - 10 * (len(plates) + 1)) / len(plates) / 12
    assert pmap._layout()[0].cell > side_by_side_cell  # larger than in one row
    for g in pmap._layout():  # every plate inside the widget, above the legend
        fmt = g.plate.format
        assert g.x + g.cell * fmt.columns <= pmap.width()
        assert g.y + g.cell * fmt.rows <= pmap.height() - pmap._legend_h
    # titles shorten to what fits the plate's width
    metrics = QFontMetrics(pmap.font())
    plate = plates[0]
    full = f"{plate.experiment} plate {plate.index}"
    assert plate_title(plate, metrics, 1000) == full
    assert plate_title(plate, metrics, metrics.horizontalAdvance(full) - 1) == \
        f"Plate {plate.index}"
    assert plate_title(plate, metrics, 5) == f"P{plate.index}"


def test_problem_wells_hatched_and_flagged(small_screen_path: Path, tmp_path: Path,
                                           qtbot) -> None:
    root = Path(shutil.copytree(small_screen_path, tmp_path / "screen"))
    screen = open_screen(root)
    plate = next(screen.plates())
    gone, partial = plate.used_wells()[1], plate.used_wells()[2]
    for site in gone.sites:
        for path in site.channels.values():
            path.unlink()
    partial.sites[1].channels[6].unlink()
    screen = open_screen(root)
    state = AppState()
    state.set_screen(screen)
    state.select_plate(plate.experiment, plate.index)
    dock = PlateMapDock(state)
    dock.resize(520, 420)
    qtbot.addWidget(dock)
    dock.show()
    qtbot.waitExposed(dock)
    pixels = _grab_array(dock.map)
    rect = dock.map.well_rect(plate.key, gone.name)
    tile = pixels[int(rect.top()) + 3 : int(rect.bottom()) - 3,
                  int(rect.left()) + 3 : int(rect.right()) - 3].reshape(-1, 3)
    assert len({tuple(p) for p in tile}) >= 2  # hatched, not a flat fill
    assert tuple(colours.WELL_TYPE_RGB[gone.well_type.value]) not in {tuple(p) for p in tile}
    # the browser flags the plate with the problems in its tooltip
    browser = ScreenBrowser(state)
    qtbot.addWidget(browser)
    item = browser.plate_item(plate.key)
    assert int(item.text(3)) >= 3  # 2 missing sites + 1 missing channel
    assert gone.name in item.toolTip(0) and partial.name in item.toolTip(0)
    clean = browser.plate_item(list(screen.plates())[1].key)
    assert clean.text(3) == ""


def _name_fits(tree, item) -> bool:
    """True when column 0 shows ``item``'s whole text (not elided)."""
    depth, parent = 0, item.parent()
    while parent is not None:
        depth, parent = depth + 1, parent.parent()
    needed = (tree.indentation() * (depth + 1)  # + 1: the root's branch arrow
              + tree.fontMetrics().horizontalAdvance(item.text(0)) + 8)
    return tree.columnWidth(0) >= needed


def test_browser_names_readable_in_a_narrow_dock(small_screen, qtbot) -> None:
    state = AppState()
    state.set_screen(small_screen)
    browser = ScreenBrowser(state)
    browser.resize(260, 300)  # about napari's default left dock width
    qtbot.addWidget(browser)
    browser.show()
    qtbot.waitExposed(browser)
    tree = browser.tree
    items = []
    for i in range(tree.topLevelItemCount()):
        top = tree.topLevelItem(i)
        items.append(top)
        for j in range(top.childCount()):
            exp = top.child(j)
            items.append(exp)
            items.extend(exp.child(k) for k in range(exp.childCount()))
    plate = next(small_screen.plates())
    assert browser.plate_item(plate.key) in items
    unreadable = [it.text(0) for it in items if not _name_fits(tree, it)]
    assert not unreadable
    # numeric columns stay narrow: plate rows show T/P/N, aggregate rows a total + tooltip
    counts = plate.well_counts()
    row = browser.plate_item(plate.key)
    assert row.text(1) == (f"{counts['treatment']}/{counts['positive_control']}/"
                           f"{counts['negative_control']}")
    exp_item = row.parent()
    total = sum(len(p.wells) for p in small_screen.experiments[plate.experiment]
                .plates.values())
    assert exp_item.text(1) == str(total) and "treatment/positive/negative" in \
        exp_item.toolTip(1)
    assert small_screen.experiments[plate.experiment].split in exp_item.toolTip(0)


def test_legend_stays_inside_a_short_map(dock, prediction_frame) -> None:
    state, plate, pmap = dock.state, dock.state.plate, dock.map
    used = [w for w in plate.used_wells()]
    state.set_predictions({plate.key: prediction_frame(plate, {used[0].name: 0.9})})
    dock.set_mode("confidence")
    hint = pmap.minimumSizeHint()
    pmap.setFixedSize(max(hint.width(), 300), hint.height())  # as short as it may get
    pixels = _grab_array(pmap).astype(int)
    h = pixels.shape[0]
    # colour bar: rows that are mostly saturated colour; caption: light pixels below it
    saturated = (pixels.max(-1) - pixels.min(-1)) > 60
    bar_rows = np.nonzero(saturated.sum(1) > 0.5 * pixels.shape[1])[0]
    assert len(bar_rows), "colour bar not drawn"
    below = pixels[bar_rows.max() + 2 :]
    text_rows = np.nonzero((below.min(-1) > 150).sum(1) > 0)[0]
    assert len(text_rows) >= 5, "caption not drawn"
    # the caption ends above the widget's bottom edge (not cut off)
    assert bar_rows.max() + 2 + text_rows.max() < h - 1
    # every well is above the legend
    rect = pmap.well_rect(plate.key, used[-1].name)
    assert rect.bottom() < bar_rows.min()


def test_first_predictions_switch_the_map_to_confidence(qtbot, small_screen, prediction_frame):
    """A user who waited for predictions sees them at once, unless they chose a mode."""
    from deepnoise_app.models.state import AppState
    from deepnoise_app.plate_map import PlateMapDock

    state = AppState()
    state.set_screen(small_screen)
    plate = next(small_screen.plates())
    state.select_plate(plate.experiment, plate.index)
    dock = PlateMapDock(state)
    qtbot.addWidget(dock)
    assert dock.map.mode == "type"
    state.set_predictions({plate.key: prediction_frame(plate)})
    assert dock.map.mode == "confidence"
    assert dock.mode_combo.currentData() == "confidence"

    chosen = PlateMapDock(state)
    qtbot.addWidget(chosen)
    chosen.set_mode("correct")
    state.set_predictions({plate.key: prediction_frame(plate)})
    assert chosen.map.mode == "correct"  # the user's choice stands
