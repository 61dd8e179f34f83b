"""One user's journey, driven only by clicks, keys and menu entries, with the real engine.

Open the app on a small screen -> Train… -> a short training set in the dialog -> Train ->
the curves receive points -> Score the whole screen -> the plate map shows confidence ->
mosaic and back -> Export… -> the per-plate CSVs read back with pandas -> open a second
screen with 3 channels -> its wells show only its own pixels. A screenshot of the window
is kept at every step ($DEEPNOISE_SCREENSHOTS/journey, else the test's tmp folder), at
napari's default window size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qtpy.QtWidgets import QApplication
from ui_driver import (
    choose,
    click,
    click_tab,
    fitted_fraction,
    menu_action,
    raise_dock,
    shots_dir,
    type_text,
)

from deepnoise_app.docks import install_docks
from deepnoise_app.main import _install_file_menu
from deepnoise_app.models.settings import Settings
from deepnoise_app.models.well_colours import well_colours
from deepnoise_app.state import state_for
from deepnoise_app.workflow.export_dialog import ExportDialog
from deepnoise_app.workflow.train_dialog import TrainDialog

pytest.importorskip("deepnoise_engine.serve.client")
pytest.importorskip("deepnoise_engine.train.loop")

pytestmark = [pytest.mark.gui, pytest.mark.slow, pytest.mark.usefixtures("isolated_user_dirs")]


@pytest.fixture(scope="module")
def screens(tmp_path_factory) -> tuple[Path, Path]:
    """A 6-channel screen to train on and a 3-channel one with larger images."""
    from deepnoise_engine.screen.synthetic import make_demo

    root = tmp_path_factory.mktemp("journey")
    first = make_demo(root / "six", image_size=32, sirnas_per_plate=4,
                      plates_per_experiment=2, train_experiments_per_cell_type=1,
                      test_experiments_per_cell_type=1, sites=1, missing_wells=0)
    second = make_demo(root / "three", seed=5, image_size=40, channels=3, sirnas_per_plate=4,
                       plates_per_experiment=1, train_experiments_per_cell_type=1,
                       test_experiments_per_cell_type=0, sites=1, missing_wells=0)
    return first, second


def _open_recent(qtbot, viewer, docks, path: Path) -> None:
    Settings().add_recent_screen(path)
    menu_action(viewer.window._qt_window, "File", "Recent screens", str(path.resolve())).trigger()
    qtbot.waitUntil(lambda: docks.well_viewer.loaded_well is not None
                    and docks.browser.isVisible(), timeout=30_000)


def _map_pixel(plate_map, plate, well: str) -> tuple[int, int, int]:
    rect = plate_map.map.well_rect(plate.key, well)
    image = plate_map.map.grab().toImage()
    colour = image.pixelColor(rect.center().toPoint())
    return colour.red(), colour.green(), colour.blue()


def test_journey_by_clicks(make_napari_viewer, qtbot, tmp_path, screens, monkeypatch,
                           capfd) -> None:
    first, second = screens
    monkeypatch.delenv("DEEPNOISE_NO_ENGINE_AUTOSTART")  # the engine starts with the app
    shots = shots_dir(tmp_path, "journey")
    viewer = make_napari_viewer(show=True)
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    _install_file_menu(viewer, state)
    dock = docks.workflow

    def shot(name: str) -> None:
        QApplication.processEvents()
        viewer.screenshot(str(shots / f"{name}.png"), canvas_only=False, flash=False)

    # 1. open the screen from File > Recent screens
    _open_recent(qtbot, viewer, docks, first)
    assert state.screen is not None and Path(state.screen.root) == first.resolve()
    shot("01-opened")

    # 2. Train… opens the dialog; a short training is set with clicks and keys
    window = viewer.window._qt_window
    raise_dock(qtbot, window, "DeepNoise workflow")
    click(qtbot, dock.train_button)
    dialog = dock.findChild(TrainDialog)
    qtbot.waitUntil(lambda: dialog is not None and dialog.isVisible(), timeout=5_000)
    assert dialog.size_spin.value() <= 32  # never more than the screen's own size
    type_text(qtbot, dialog.epochs_spin, "1")
    for check in (dialog.finetune_check, dialog.mean_teacher_check, dialog.pseudo_check):
        if check.isChecked():  # the shortest training: one supervised epoch
            click(qtbot, check)
        assert not check.isChecked()
    assert dialog.epochs_spin.value() == 1
    assert dialog.repeats_spin.value() == 2  # tiny's two independent trainings, kept
    dialog.grab().save(str(shots / "02-train-dialog.png"))
    click(qtbot, dialog.buttons.button(dialog.buttons.StandardButton.Ok))
    assert not dialog.isVisible(), dialog.error_label.text()

    # 3. the Training tab shows the run; its curves receive points
    view = dock.training_view
    assert dock.tabs.tabText(dock.tabs.currentIndex()) == "Training"
    qtbot.waitUntil(lambda: view.curves.drawn_point_count() > 0, timeout=90_000)
    qtbot.waitUntil(lambda: view.status == "done", timeout=60_000)
    qtbot.waitUntil(lambda: bool(dock.model_panel.models), timeout=30_000)
    # both repeats trained, one after the other, and both serve
    assert "repeat 2/2: training" in view.log_view.toPlainText()
    serves = dock.model_panel.models[0]["serves"]
    assert all(len(stems) == 2 for stems in serves.values()), serves
    shot("03-trained")

    # 4. score the whole screen
    click_tab(qtbot, dock.tabs, "Workflow")
    panel = dock.score_panel
    click(qtbot, panel.all_button)
    choose(qtbot, panel.tta_combo, "1")
    click(qtbot, panel.score_button)
    plates = list(state.screen.plates())
    qtbot.waitUntil(lambda: len(state.predictions) == len(plates), timeout=90_000)
    assert "Scored" in panel.status.text()

    # 5. the plate map (brought to the front) shows the confidence of every well
    plate_map = docks.plate_map
    assert plate_map.isVisible()
    assert plate_map.mode_combo.currentData() == "confidence"
    qtbot.wait(50)
    wanted = well_colours(state.plate, "confidence", state)
    shown = [_map_pixel(plate_map, state.plate, w.name) for w in state.plate.used_wells()[:6]]
    expected = [tuple(wanted[w.name][:3]) for w in state.plate.used_wells()[:6]]
    assert all(np.abs(np.subtract(s, e)).max() <= 12 for s, e in zip(shown, expected,
                                                                       strict=True))
    shot("04-scored-plate-map")

    # 6. the plate mosaic with the calls, and back to the well, framed
    mosaic = docks.mosaic
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=30_000):
        click(qtbot, mosaic.show_button)
    assert mosaic.image_layer().visible and len(mosaic.calls_layer().data) == len(
        state.plate.used_wells())
    shot("05-mosaic")
    click(qtbot, mosaic.show_button)
    channels = docks.well_viewer.channel_layers()
    assert all(layer.visible for layer in channels.values())
    assert not mosaic.image_layer().visible
    assert fitted_fraction(viewer, 32, 32) > 0.8  # the well fills the canvas again
    shot("06-back-to-well")

    # 7. Export… writes the per-plate CSVs
    raise_dock(qtbot, window, "DeepNoise workflow")
    click(qtbot, dock.export_button)
    export = dock.findChild(ExportDialog)
    qtbot.waitUntil(lambda: export is not None and export.isVisible(), timeout=5_000)
    out = tmp_path / "export"
    type_text(qtbot, export.out_edit, str(out))
    click(qtbot, export.export_button)
    qtbot.waitUntil(lambda: bool(export.written), timeout=60_000)
    export.grab().save(str(shots / "07-export.png"))
    for plate in plates:
        report = pd.read_csv(out / f"{plate.experiment}_Plate{plate.index}.csv")
        assert set(report["well"]) == set(plate.wells)
        assert report["confidence"].between(0, 1).all()
    click(qtbot, export.close_button)
    assert not export.isVisible()

    # 8. a second screen with 3 channels: its wells show only its own pixels
    _open_recent(qtbot, viewer, docks, second)
    qtbot.waitUntil(lambda: Path(state.screen.root) == second.resolve()
                    and docks.well_viewer.loaded_well == state.well.name, timeout=30_000)
    from deepnoise_engine.screen.images import read_site

    channels = docks.well_viewer.channel_layers()
    assert sorted(channels) == [1, 2, 3]
    pixels = read_site(state.well.sites[0], [1, 2, 3])
    for i, channel in enumerate([1, 2, 3]):
        np.testing.assert_array_equal(channels[channel].data, pixels[i])
    assert not state.predictions and "Demo" not in dock.demo_label.text()
    # the model of 6 channels cannot score it: unloaded, and the dock says why
    assert dock.model_panel.models == [] and "3" in dock.model_panel.message.text()
    assert not dock.score_panel.progress_bar.isTextVisible()  # no stale 100%
    assert fitted_fraction(viewer, 40, 40) > 0.8
    shot("08-second-screen")

    # no traceback anywhere (Qt slots' exceptions already fail the test through pytest-qt)
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-3000:]
