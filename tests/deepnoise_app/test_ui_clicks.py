"""Every control of the DeepNoise docks, used as a user does, in the real napari window.

Buttons are clicked (``qtbot.mouseClick``), menu entries triggered, keys pressed, modal
file dialogs and message boxes answered by typing and clicking; each test asserts what a
user would see: a dialog shown, a layer changed, a file written, a message. The controls
that need a model use one trained once by the engine's CLI (tests that talk to the engine
process are marked slow).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QMessageBox, QPushButton
from ui_driver import (
    answer_file_dialog,
    answer_message_box,
    canvas_click,
    choose,
    click,
    click_tab,
    fitted_fraction,
    hover,
    menu_action,
    raise_dock,
    type_text,
)

from deepnoise_app.docks import install_docks
from deepnoise_app.engine import READY
from deepnoise_app.main import _install_file_menu
from deepnoise_app.models.screen_opening import open_screen_path
from deepnoise_app.models.settings import Settings
from deepnoise_app.models.thumbnails import tile_origin
from deepnoise_app.models.well_colours import well_colours
from deepnoise_app.state import state_for
from deepnoise_app.view_fit import size_to_screen
from deepnoise_app.workflow.export_dialog import ExportDialog
from deepnoise_app.workflow.train_dialog import TrainDialog
from deepnoise_engine.screen.images import read_site

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("isolated_user_dirs")]


def _app(make_napari_viewer, qtbot, screen: Path | None = None):
    """The app's window: napari with the DeepNoise docks and File menu entries."""
    viewer = make_napari_viewer(show=True)
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    _install_file_menu(viewer, state)
    if screen is not None:
        open_screen_path(state, screen)
        qtbot.waitUntil(lambda: docks.well_viewer.loaded_well == state.well.name,
                        timeout=20_000)
    return viewer, state, docks


def _map_pixel(plate_map, plate, well: str) -> tuple[int, int, int]:
    """The colour the plate map shows in the middle of a well."""
    rect = plate_map.map.well_rect(plate.key, well)
    colour = plate_map.map.grab().toImage().pixelColor(rect.center().toPoint())
    return colour.red(), colour.green(), colour.blue()


def _rgb(colours: dict, well: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in colours[well][:3])


# -- menus, browser, plate map, well viewer, mosaic ----------------------------------------
def test_file_menu_and_browser_open_screens(make_napari_viewer, qtbot,
                                            small_screen_path: Path) -> None:
    viewer, state, docks = _app(make_napari_viewer, qtbot)
    window = viewer.window._qt_window
    # File > Open screen...: a folder dialog; the typed folder opens
    answer_file_dialog(qtbot, small_screen_path)
    menu_action(window, "File", "Open screen...").trigger()
    qtbot.waitUntil(lambda: state.screen is not None and docks.well_viewer.loaded_well,
                    timeout=20_000)
    assert Path(state.screen.root) == small_screen_path.resolve()
    assert viewer.title == "DeepNoise - small96"
    # File > Recent screens lists it; the browser's Open screen... button opens a dialog
    entries = [a.text() for a in menu_action(window, "File", "Recent screens").menu().actions()]
    assert entries == [str(small_screen_path.resolve())]
    answer_file_dialog(qtbot, None)  # Escape: nothing changes
    click(qtbot, docks.browser.open_button)
    assert Path(state.screen.root) == small_screen_path.resolve()
    # a plate row of the browser selects that plate
    tree = docks.browser.tree
    item = docks.browser.plate_item(list(state.screen.plates())[1].key)
    tree.scrollToItem(item)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton,
                     pos=tree.visualItemRect(item).center())
    assert state.plate.key == list(state.screen.plates())[1].key
    assert state.plate.experiment in docks.plate_map.title.text()


def test_plate_map_controls_and_keys(make_napari_viewer, qtbot, small_screen_path: Path,
                                     prediction_frame) -> None:
    viewer, state, docks = _app(make_napari_viewer, qtbot, small_screen_path)
    pm = docks.plate_map
    raise_dock(qtbot, viewer.window._qt_window, "DeepNoise plate map")
    state.set_predictions({p.key: prediction_frame(p, changed={p.used_wells()[0].name})
                           for p in state.screen.plates()})
    plate = state.plate
    # a click on a well selects it everywhere
    target = plate.used_wells()[3]
    rect = pm.map.well_rect(plate.key, target.name)
    qtbot.mouseClick(pm.map, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    assert state.well is target
    qtbot.waitUntil(lambda: docks.well_viewer.loaded_well == target.name, timeout=10_000)
    # the arrow keys walk the plate
    pm.map.setFocus()
    qtbot.keyClick(pm.map, Qt.Key.Key_Right)
    assert state.well is not target and state.well.row == target.row
    before = state.well
    qtbot.keyClick(pm.map, Qt.Key.Key_Down)
    assert state.well is not before
    qtbot.keyClick(pm.map, Qt.Key.Key_Up)
    qtbot.keyClick(pm.map, Qt.Key.Key_Left)
    assert state.well.row == target.row
    # the colour mode recolours the wells on screen
    choose(qtbot, pm.mode_combo, "Well type")
    assert _map_pixel(pm, plate, target.name) == _rgb(well_colours(plate, "type", state),
                                                      target.name)
    choose(qtbot, pm.mode_combo, pm.mode_combo.itemText(
        pm.mode_combo.findData("confidence")))
    assert _map_pixel(pm, plate, target.name) == _rgb(
        well_colours(plate, "confidence", state), target.name)
    assert _rgb(well_colours(plate, "confidence", state), target.name) != _rgb(
        well_colours(plate, "type", state), target.name)
    # raw / balanced calls
    choose(qtbot, pm.prediction_combo, "Raw calls (argmax)")
    assert state.prediction_mode == "raw"
    choose(qtbot, pm.prediction_combo, "Balanced calls")
    assert state.prediction_mode == "balanced"
    # all plates of the experiment side by side
    click(qtbot, pm.side_by_side)
    assert len(pm.map.plates) == len(state.screen.experiments[plate.experiment].plates)
    click(qtbot, pm.side_by_side)
    assert len(pm.map.plates) == 1


def test_site_choice_and_mosaic_by_clicks(make_napari_viewer, qtbot, small_screen_path: Path,
                                          prediction_frame) -> None:
    viewer, state, docks = _app(make_napari_viewer, qtbot, small_screen_path)
    wv, mosaic = docks.well_viewer, docks.mosaic
    well = state.well
    layers = wv.channel_layers()
    choose(qtbot, wv.site_combo, "Site 2")
    qtbot.waitUntil(lambda: np.array_equal(layers[1].data, read_site(well.sites[1], [1])[0]),
                    timeout=10_000)
    choose(qtbot, wv.site_combo, "Site 1")
    qtbot.waitUntil(lambda: np.array_equal(layers[1].data, read_site(well.sites[0], [1])[0]),
                    timeout=10_000)
    # a 32 px screen is not offered larger thumbnails than its images
    sizes = [mosaic.size_combo.itemData(i) for i in range(mosaic.size_combo.count())]
    assert sizes == [32]
    # the mosaic, before any prediction, then predictions arrive while it is shown
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=20_000):
        click(qtbot, mosaic.show_button)
    assert mosaic.show_button.text() == "Back to well view"
    assert not any(ly.visible for ly in layers.values())
    assert len(mosaic.calls_layer().data) == 0
    state.set_predictions({state.plate.key: prediction_frame(state.plate)})
    assert len(mosaic.calls_layer().data) == len(state.plate.used_wells())
    assert mosaic.calls_layer().features["confidence"].dtype == float
    # a click on a tile selects that well; a double click opens it, framed
    t = mosaic.size
    other = state.plate.used_wells()[2]
    y, x = tile_origin(other.row, other.column, t)
    canvas_click(qtbot, viewer, y + t / 2, x + t / 2)
    qtbot.waitUntil(lambda: state.well is other, timeout=5_000)
    canvas_click(qtbot, viewer, y + t / 2, x + t / 2, double=True)
    qtbot.waitUntil(lambda: not mosaic.shown, timeout=5_000)
    assert mosaic.show_button.text() == "Show plate mosaic"
    qtbot.waitUntil(lambda: wv.loaded_well == other.name, timeout=10_000)
    assert fitted_fraction(viewer, 32, 32) > 0.8
    # napari's home button frames the well too, not the hidden mosaic
    viewer.camera.zoom = viewer.camera.zoom / 5
    home = viewer.window._qt_viewer.viewerButtons.resetViewButton
    click(qtbot, home)
    assert fitted_fraction(viewer, 32, 32) > 0.8


def test_thumbnail_size_choice(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    from deepnoise_engine.screen.synthetic import make_demo

    screen = make_demo(tmp_path / "s48", image_size=48, channels=3, plates_per_experiment=1,
                       sirnas_per_plate=4, sites=1, train_experiments_per_cell_type=1,
                       test_experiments_per_cell_type=0)
    _viewer, state, docks = _app(make_napari_viewer, qtbot, screen)
    mosaic = docks.mosaic
    combo = mosaic.size_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "32 px thumbnails", "48 px thumbnails"]
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=20_000):
        click(qtbot, mosaic.show_button)
    rows, cols = state.plate.format.rows, state.plate.format.columns
    # the largest size up to the default 64 px, then the smaller one chosen
    assert mosaic.image_layer().data.shape[:2] == (rows * 50 + 2, cols * 50 + 2)
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=20_000):
        choose(qtbot, combo, "32 px thumbnails")
    assert mosaic.image_layer().data.shape[:2] == (rows * 34 + 2, cols * 34 + 2)


def test_mosaic_after_predictions_while_hidden_and_other_screen(
        make_napari_viewer, qtbot, small_screen_path: Path, prediction_frame,
        tmp_path: Path) -> None:
    """Issue 17's crashes: calls set while the mosaic is hidden, then another screen."""
    from deepnoise_engine.screen.synthetic import make_demo

    other = make_demo(tmp_path / "s384", plate_format=384, channels=3, image_size=24,
                      plates_per_experiment=1, sirnas_per_plate=12, sites=1,
                      train_experiments_per_cell_type=1, test_experiments_per_cell_type=0)
    _viewer, state, docks = _app(make_napari_viewer, qtbot, small_screen_path)
    mosaic = docks.mosaic
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=20_000):
        click(qtbot, mosaic.show_button)
    click(qtbot, mosaic.show_button)
    state.set_predictions({p.key: prediction_frame(p) for p in state.screen.plates()})
    open_screen_path(state, other)
    qtbot.waitUntil(lambda: docks.well_viewer.loaded_well == state.well.name, timeout=20_000)
    assert sorted(docks.well_viewer.channel_layers()) == [1, 2, 3]
    assert mosaic.status.text().startswith("Click a tile")
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=30_000):
        click(qtbot, mosaic.show_button)
    click(qtbot, mosaic.show_button)
    open_screen_path(state, small_screen_path)
    state.set_predictions({p.key: prediction_frame(p) for p in state.screen.plates()})
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=30_000):
        click(qtbot, mosaic.show_button)
    assert len(mosaic.calls_layer().data) == len(state.plate.used_wells())
    qtbot.wait(200)  # frames drawn: pytest-qt fails the test on any exception in them


def test_window_opens_sized_to_its_screen_and_refits_on_resize(
        make_napari_viewer, qtbot, small_screen_path: Path) -> None:
    viewer, _state, _docks = _app(make_napari_viewer, qtbot, small_screen_path)
    window = viewer.window._qt_window
    free = window.screen().availableGeometry()
    width, height = size_to_screen(window)
    qtbot.waitUntil(lambda: window.width() == width, timeout=5_000)
    assert 0.8 * free.width() <= width <= free.width()
    assert 0.8 * free.height() <= height <= free.height()
    assert free.contains(window.frameGeometry().center())
    qtbot.waitUntil(lambda: fitted_fraction(viewer, 32, 32) > 0.9, timeout=5_000)
    window.resize(900, 640)
    qtbot.waitUntil(lambda: 0.9 < fitted_fraction(viewer, 32, 32) <= 1.0, timeout=5_000)
    # a user's own zoom is kept through a resize
    viewer.camera.zoom = viewer.camera.zoom * 2
    zoom = viewer.camera.zoom
    window.resize(1000, 700)
    qtbot.wait(300)
    assert viewer.camera.zoom == zoom


# -- workflow dock without a model ------------------------------------------------------------
def test_workflow_buttons_without_a_model(make_napari_viewer, qtbot, small_screen_path: Path,
                                          tmp_path: Path) -> None:
    viewer, state, docks = _app(make_napari_viewer, qtbot, small_screen_path)
    dock = docks.workflow
    window = viewer.window._qt_window
    raise_dock(qtbot, window, "DeepNoise workflow")
    panel, models = dock.score_panel, dock.model_panel
    # Score without a model says what to do; loading one clears the line
    click(qtbot, panel.score_button)
    assert "Load a model" in panel.status.text()
    # Current plate / Whole screen check the plates to score
    click(qtbot, panel.plate_button)
    assert panel.chosen_plates() == [f"{state.plate.experiment}:{state.plate.index}"]
    assert panel.status.text() == ""  # the plates changed: the old error went
    click(qtbot, panel.all_button)
    assert panel.chosen_plates() is None
    tree = panel.tree
    top = tree.topLevelItem(0)
    top.setExpanded(True)
    child = top.child(0)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton,
                     pos=tree.visualItemRect(child).center())
    qtbot.keyClick(tree, Qt.Key.Key_Space)  # unchecks the plate
    assert child.data(0, Qt.ItemDataRole.UserRole) not in panel.chosen_plates()
    assert top.checkState(0) == Qt.CheckState.PartiallyChecked
    qtbot.keyClick(tree, Qt.Key.Key_Space)
    assert panel.chosen_plates() is None
    click(qtbot, panel.raw_radio)
    assert state.prediction_mode == "raw"
    click(qtbot, panel.balanced_radio)
    assert state.prediction_mode == "balanced"
    choose(qtbot, panel.balance_combo, "paper")
    choose(qtbot, panel.tta_combo, "1")
    assert panel.request_params()["balance"] == "paper" and panel.request_params()["tta"] == 1
    # Remove with nothing loaded says so
    click(qtbot, models.remove_button)
    assert models.message.text() == "No model is loaded."
    # Load run… asks for a folder; Escape leaves everything as it was
    answer_file_dialog(qtbot, None)
    click(qtbot, models.run_button)
    assert models.models == [] and models.message.text() == "No model is loaded."
    # Export… opens its dialog, which says there is nothing to export yet
    click(qtbot, dock.export_button)
    export = dock.findChild(ExportDialog)
    qtbot.waitUntil(lambda: export is not None and export.isVisible(), timeout=5_000)
    assert "nothing scored yet" in export.source.text()
    assert not export.export_button.isEnabled()
    browse = next(b for b in export.findChildren(QPushButton) if b.text() == "Browse…")
    answer_file_dialog(qtbot, tmp_path)
    click(qtbot, browse)
    assert export.out_edit.text() == str(tmp_path)
    click(qtbot, export.close_button)
    assert not export.isVisible()
    # Train… opens the dialog; its controls answer; Cancel closes it without training
    click(qtbot, dock.train_button)
    dialog = dock.findChild(TrainDialog)
    qtbot.waitUntil(lambda: dialog is not None and dialog.isVisible(), timeout=5_000)
    click(qtbot, dialog.ensemble_check)
    assert dialog.model2_combo.isEnabled()
    click(qtbot, dialog.ensemble_check)
    assert not dialog.model2_combo.isEnabled()
    browse_data, browse_out = [b for b in dialog.findChildren(QPushButton)
                               if b.text() == "Browse…"]
    answer_file_dialog(qtbot, tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    click(qtbot, browse_out)
    assert dialog.out_edit.text() == str(tmp_path / "runs")
    # a problem stays shown until it is fixed, then goes
    (tmp_path / "runs" / "file.txt").write_text("taken")
    click(qtbot, dialog.buttons.button(dialog.buttons.StandardButton.Ok))
    assert dialog.isVisible() and "choose a new or empty folder" in dialog.error_label.text()
    type_text(qtbot, dialog.out_edit, str(tmp_path / "fresh-run"))
    assert dialog.error_label.text() == ""
    answer_file_dialog(qtbot, small_screen_path)
    click(qtbot, browse_data)
    assert dialog.table.rowCount() == len(state.screen.experiments)
    click(qtbot, dialog.buttons.button(dialog.buttons.StandardButton.Cancel))
    assert not dialog.isVisible() and dock.training_view.request is None


def test_training_tab_buttons(make_napari_viewer, qtbot, small_screen_path: Path,
                              tmp_path: Path) -> None:
    import json

    viewer, _state, docks = _app(make_napari_viewer, qtbot, small_screen_path)
    dock = docks.workflow
    raise_dock(qtbot, viewer.window._qt_window, "DeepNoise workflow")
    click_tab(qtbot, dock.tabs, "Training")
    view = dock.training_view
    run = tmp_path / "run"
    run.mkdir()
    records = [{"epoch": e, "stage": "shared" if e < 3 else "finetune:HEPG2",
                "train_loss": 3.0 / e, "val_loss": 3.2 / e, "val_acc_student_raw": 0.1 * e,
                "val_acc_student_balanced": 0.15 * e} for e in (1, 2, 3, 4)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    # Show run… draws a finished run's curves from its metrics.jsonl
    answer_file_dialog(qtbot, run)
    click(qtbot, view.open_button)
    assert view.curves.drawn_point_count() == 4 * 4
    assert "4 epochs" in view.title.text()
    # hovering reads the nearest point: the pointer moved over train loss at epoch 2
    from qtpy.QtCore import QPointF

    panel = view.curves.loss
    qtbot.waitUntil(lambda: panel.widget.isVisible(), timeout=5_000)
    qtbot.wait(300)  # the plot has fitted its range to the points
    scene_pos = panel.plot.getViewBox().mapViewToScene(QPointF(2.0, 1.5))
    hover(panel.widget.viewport(), panel.widget.mapFromScene(scene_pos))
    qtbot.waitUntil(lambda: view.curves.readout.text().startswith(
        "train loss: 1.5 at epoch 2"), timeout=3_000)
    # Save image… writes a PNG of the curves
    answer_file_dialog(qtbot, tmp_path / "curves.png")
    click(qtbot, view.save_button)
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert "Curves saved" in view.log_view.toPlainText()
    # Resume… on a folder that is not a resumable run says so
    answer_file_dialog(qtbot, run)
    click(qtbot, view.resume_button)
    assert "not a resumable run" in view.log_view.toPlainText()
    assert not view.cancel_button.isEnabled()  # nothing runs: nothing to cancel


# -- workflow dock with the engine and a trained model ----------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(screen, run folder, score folder): a 1-epoch tiny run and its scores, by the CLI."""
    from deepnoise_engine.screen.synthetic import make_demo

    root = tmp_path_factory.mktemp("trained")
    screen = make_demo(root / "screen", image_size=32, sirnas_per_plate=4, channels=3,
                       plates_per_experiment=2, train_experiments_per_cell_type=1,
                       test_experiments_per_cell_type=0, sites=1, missing_wells=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "deepnoise_engine"]
    run, scores = root / "run", root / "scores"
    subprocess.run([*cli, "train", "--data", str(screen), "--out", str(run), "--quiet",
                    "--set", "model.epochs=1", "--set", "finetune.enabled=false"],
                   check=True, env=env, capture_output=True, timeout=300)
    subprocess.run([*cli, "score", "--data", str(screen), "--model", str(run), "--out",
                    str(scores), "--tta", "1"], check=True, env=env, capture_output=True,
                   timeout=300)
    return screen, run, scores


@pytest.mark.slow
def test_workflow_buttons_with_the_engine(make_napari_viewer, qtbot, trained, tmp_path,
                                          monkeypatch) -> None:
    screen, run, scores = trained
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    viewer, state, docks = _app(make_napari_viewer, qtbot, screen)
    dock = docks.workflow
    window = viewer.window._qt_window
    raise_dock(qtbot, window, "DeepNoise workflow")
    panel, models = dock.score_panel, dock.model_panel
    # Restart engine starts it; the engine line says where it runs
    click(qtbot, dock.restart_button)
    qtbot.waitUntil(lambda: dock.bridge.state == READY, timeout=60_000)
    assert dock.engine_label.text().startswith("Engine ready") and " on " in \
        dock.engine_label.text() and "((" not in dock.engine_label.text()
    # Load run… (a folder dialog) describes the run; its curves show in the Training tab
    answer_file_dialog(qtbot, run)
    click(qtbot, models.run_button)
    qtbot.waitUntil(lambda: bool(models.models), timeout=30_000)
    assert models.message.text().startswith("Loaded run")
    assert dock.training_view.curves.drawn_point_count() > 0
    # Load files… adds the run's model file: an ensemble of two
    model_file = next((run / "models").glob("*.json"))
    answer_file_dialog(qtbot, model_file)
    click(qtbot, models.files_button)
    qtbot.waitUntil(lambda: len(models.models) == 2, timeout=30_000)
    assert "2 models loaded" in models.message.text()
    # Remove: nothing selected says so; the selected one goes and the count follows
    models.tree.setCurrentItem(None)
    click(qtbot, models.remove_button)
    assert models.message.text() == "Select a model in the list to remove it."
    item = models.tree.topLevelItem(1)
    qtbot.mouseClick(models.tree.viewport(), Qt.MouseButton.LeftButton,
                     pos=models.tree.visualItemRect(item).center())
    click(qtbot, models.remove_button)
    assert len(models.models) == 1 and "1 model is loaded" in models.message.text()
    assert panel.models_label.text() == "With: run"
    # Score the current plate, after the whole screen was scored: the others stay
    state.load_predictions(scores)
    everything = set(state.predictions)
    click(qtbot, panel.plate_button)
    choose(qtbot, panel.tta_combo, "1")
    click(qtbot, panel.score_button)
    qtbot.waitUntil(lambda: panel.request is None, timeout=60_000)
    assert set(state.predictions) == everything, panel.status.text()
    assert f"The {len(everything) - 1} plate(s) scored before were kept" in panel.status.text()
    assert state.score_dir != scores  # the new folder holds every plate: Export… has them
    # a scoring cancelled at once: the bar does not claim 100%
    click(qtbot, panel.all_button)
    choose(qtbot, panel.tta_combo, "8")
    click(qtbot, panel.score_button)
    click(qtbot, panel.cancel_button)
    qtbot.waitUntil(lambda: panel.request is None, timeout=60_000)
    if "cancelled" in panel.status.text():
        assert panel.progress_bar.value() == 0 and not panel.progress_bar.isTextVisible()
    # Export…: the CSVs written; again asks before overwriting (a real message box)
    click(qtbot, dock.export_button)
    export = dock.findChild(ExportDialog)
    qtbot.waitUntil(lambda: export is not None and export.isVisible(), timeout=5_000)
    out = tmp_path / "export"
    type_text(qtbot, export.out_edit, str(out))
    click(qtbot, export.figures_check)
    click(qtbot, export.export_button)
    qtbot.waitUntil(lambda: bool(export.written), timeout=60_000)
    for plate in state.screen.plates():
        assert set(pd.read_csv(out / f"{plate.experiment}_Plate{plate.index}.csv")["well"]) \
            == set(plate.wells)
        assert (out / f"{plate.experiment}_Plate{plate.index}.png").stat().st_size > 0
    answer_message_box(qtbot, QMessageBox.StandardButton.Yes)
    click(qtbot, export.export_button)
    qtbot.waitUntil(lambda: "Wrote" in export.status.text() and export.request is None,
                    timeout=60_000)
    click(qtbot, export.close_button)
    QApplication.processEvents()
    dock.bridge.shutdown(timeout=2.0)


def _to_front(qtbot, window, widget) -> None:
    """Click the tab of the dock holding ``widget`` when another dock covers it."""
    from qtpy.QtWidgets import QDockWidget

    dock = widget
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    qtbot.waitUntil(lambda: dock is None or dock.isVisible(), timeout=5_000)
    if not widget.isVisible() and dock is not None:
        raise_dock(qtbot, window, dock.windowTitle())
    qtbot.waitUntil(widget.isVisible, timeout=5_000)


# -- plain napari: the plugin's widgets from the Plugins menu ---------------------------------
def test_plugin_widgets_from_the_plugins_menu(make_napari_viewer, qtbot,
                                              small_screen_path: Path) -> None:
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    plugins = menu_action(window, "Plugins")
    names = {}
    for action in plugins.menu().actions():
        menu = action.menu()
        if menu is not None and "DeepNoise" in action.text():
            menu.aboutToShow.emit()
            names = {a.text(): a for a in menu.actions()}
        elif "DeepNoise" in action.text() or action.text() in (
                "Screen browser", "Plate map", "Well viewer", "Plate mosaic"):
            names[action.text()] = action
    wanted = ["Screen browser", "Plate map", "Well viewer", "Plate mosaic",
              "DeepNoise workflow"]
    for name in wanted:
        entry = next((a for text, a in names.items() if name in text), None)
        assert entry is not None, f"no Plugins menu entry for {name}: {list(names)}"
        entry.trigger()
    widgets = viewer.window.dock_widgets
    assert len([n for n in widgets if "DeepNoise" in n or "deepnoise" in n.lower()]) >= 5
    from deepnoise_app.plugin import (
        PlateMapWidget,
        PlateMosaicWidget,
        ScreenBrowserWidget,
        WellViewerWidget,
    )

    found = {type(w): w for w in widgets.values()}
    browser, mosaic = found[ScreenBrowserWidget], found[PlateMosaicWidget]
    # the browser's Open screen... opens the typed folder in this viewer
    _to_front(qtbot, window, browser)
    answer_file_dialog(qtbot, small_screen_path)
    click(qtbot, browser.open_button)
    state = state_for(viewer)
    qtbot.waitUntil(lambda: state.well is not None
                    and found[WellViewerWidget].loaded_well == state.well.name, timeout=30_000)
    plate_map = found[PlateMapWidget]
    _to_front(qtbot, window, plate_map)
    assert state.plate.experiment in plate_map.title.text()
    well = state.plate.used_wells()[1]
    rect = plate_map.map.well_rect(state.plate.key, well.name)
    qtbot.mouseClick(plate_map.map, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    assert state.well is well
    _to_front(qtbot, window, mosaic)
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=30_000):
        click(qtbot, mosaic.show_button)
    assert mosaic.image_layer().visible
    click(qtbot, mosaic.show_button)
    assert not mosaic.image_layer().visible
    assert Settings().recent_screens[0] == str(small_screen_path.resolve())
    # the workflow widget: Train… opens its dialog on the screen opened above
    from deepnoise_app.workflow import WorkflowDock

    workflow = next(w for w in widgets.values() if isinstance(w, WorkflowDock))
    _to_front(qtbot, window, workflow)
    click(qtbot, workflow.train_button)
    dialog = workflow.findChild(TrainDialog)
    qtbot.waitUntil(lambda: dialog is not None and dialog.isVisible(), timeout=5_000)
    assert dialog.table.rowCount() == len(state.screen.experiments)
    click(qtbot, dialog.buttons.button(dialog.buttons.StandardButton.Cancel))
    assert not dialog.isVisible()
    workflow.bridge.shutdown(timeout=1.0)
