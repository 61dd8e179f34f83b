"""The docks in a real napari viewer: channel layers, site choice, missing data, the mosaic,
the plugin widgets and readers in a plain napari."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from deepnoise_app.colormaps import confidence_colormap
from deepnoise_app.docks import install_docks
from deepnoise_app.models import colours
from deepnoise_app.models.screen_opening import open_screen_path
from deepnoise_app.models.thumbnails import tile_origin
from deepnoise_app.models.well_loading import ALL_SITES, SITE_GAP
from deepnoise_app.napari_compat import text_overlay
from deepnoise_app.state import state_for
from deepnoise_engine.screen import open_screen
from deepnoise_engine.screen.images import read_site

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


def _wait_loaded(qtbot, docks, state) -> None:
    qtbot.waitUntil(lambda: state.well is not None
                    and docks.well_viewer.loaded_well == state.well.name, timeout=10_000)


def _opened(make_napari_viewer, qtbot, path: Path, *, show: bool = False):
    viewer = make_napari_viewer(show=show)
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    open_screen_path(state, path)
    _wait_loaded(qtbot, docks, state)
    return viewer, state, docks


def test_channel_layers_colours_limits_and_reuse(make_napari_viewer, qtbot, prediction_frame,
                                                 small_screen_path: Path) -> None:
    viewer, state, docks = _opened(make_napari_viewer, qtbot, small_screen_path)
    layers = docks.well_viewer.channel_layers()
    assert sorted(layers) == [1, 2, 3, 4, 5, 6]
    pixels = read_site(state.well.sites[0], state.screen.channels)
    for channel, layer in layers.items():
        rgb = np.array(colours.channel_rgb(channel)) / 255
        np.testing.assert_allclose(layer.colormap.colors[-1][:3], rgb, atol=1e-6)
        np.testing.assert_allclose(layer.colormap.colors[0][:3], 0, atol=1e-6)
        assert tuple(layer.contrast_limits) == colours.channel_window(channel)
        assert str(layer.blending) == "additive"
        np.testing.assert_array_equal(layer.data, pixels[channel - 1])
    assert f"{state.plate.experiment} plate {state.plate.index} {state.well.name}" in (
        text_overlay(viewer).text)
    # another well: the same layer objects, new pixels
    ids = {c: id(layer) for c, layer in layers.items()}
    other = state.plate.used_wells()[4]
    state.select_well(other.name)
    _wait_loaded(qtbot, docks, state)
    layers = docks.well_viewer.channel_layers()
    assert {c: id(layer) for c, layer in layers.items()} == ids
    # the six channels and the mosaic's three layers (added hidden when the docks install)
    assert len(viewer.layers) == 6 + 3
    # (their one invisible warm-up frame over, only the channels are shown)
    qtbot.waitUntil(lambda: sum(layer.visible for layer in viewer.layers) == 6, timeout=5_000)
    np.testing.assert_array_equal(layers[1].data, read_site(other.sites[0], [1])[0])
    # site 2, then both sites side by side
    docks.well_viewer.set_site(2)
    qtbot.waitUntil(lambda: np.array_equal(layers[1].data, read_site(other.sites[1], [1])[0]),
                    timeout=10_000)
    docks.well_viewer.set_site(ALL_SITES)
    qtbot.waitUntil(lambda: layers[1].data.shape == (32, 2 * 32 + SITE_GAP), timeout=10_000)
    np.testing.assert_array_equal(layers[2].data[:, -32:], read_site(other.sites[1], [2])[0])
    # a prediction appears on the canvas
    frame = prediction_frame(state.plate)
    state.set_predictions({state.plate.key: frame})
    assert f"predicted {other.sirna}" in text_overlay(viewer).text


def test_missing_channel_and_missing_well(make_napari_viewer, qtbot, small_screen_path: Path,
                                          tmp_path: Path) -> None:
    root = Path(shutil.copytree(small_screen_path, tmp_path / "screen"))
    plate = next(open_screen(root).plates())
    partial, gone = plate.used_wells()[1], plate.used_wells()[2]
    partial.sites[0].channels[5].unlink()
    for site in gone.sites:
        for path in site.channels.values():
            path.unlink()
    viewer, state, docks = _opened(make_napari_viewer, qtbot, root)
    wv = docks.well_viewer
    state.select_well(partial.name)
    _wait_loaded(qtbot, docks, state)
    layers = wv.channel_layers()
    assert not layers[5].visible and layers[4].visible
    assert not layers[5].data.any()
    assert "w5 missing" in wv.message.text()
    assert not wv.message.isHidden()
    assert "missing w5" in text_overlay(viewer).text
    # a long message wraps and keeps the room for all its lines (docks ignore wrapping)
    wv.resize(220, wv.height())
    wv._show_error("Cannot read " + " ".join(["a long reason"] * 12))
    width = wv.width() - 8
    assert wv.message.minimumHeight() >= wv.message.heightForWidth(width) > \
        2 * wv.message.fontMetrics().height()
    state.select_well(gone.name)  # every image absent: a message, no crash
    _wait_loaded(qtbot, docks, state)
    assert all(not layer.visible for layer in wv.channel_layers().values())
    state.select_well(plate.used_wells()[0].name)  # back to a complete well: shown again
    _wait_loaded(qtbot, docks, state)
    assert all(layer.visible for layer in wv.channel_layers().values())
    assert wv.message.text() == "" and wv.message.isHidden()


def _click_world(qtbot, viewer, y: float, x: float) -> None:
    """A real mouse click on the canvas at world position (y, x)."""
    canvas = viewer.window._qt_viewer.canvas
    native = canvas.native
    cy, cx = viewer.camera.center[-2], viewer.camera.center[-1]
    zoom = viewer.camera.zoom
    px = (x - cx) * zoom + native.width() / 2
    py = (y - cy) * zoom + native.height() / 2
    qtbot.mouseClick(native, Qt.MouseButton.LeftButton, pos=QPoint(int(px), int(py)))


def test_mosaic_overlay_and_click(make_napari_viewer, qtbot, prediction_frame,
                                  small_screen_path: Path) -> None:
    # shown: vispy only delivers mouse events to a visible canvas
    viewer, state, docks = _opened(make_napari_viewer, qtbot, small_screen_path, show=True)
    mosaic = docks.mosaic
    plate = state.plate
    used = plate.used_wells()
    frame = prediction_frame(plate, {used[0].name: 0.95, used[1].name: 0.05})
    state.set_predictions({plate.key: frame})
    with qtbot.waitSignal(mosaic.mosaic_ready, timeout=20_000):
        mosaic.set_shown(True)
    image = mosaic.image_layer()
    t = mosaic.size
    assert image.rgb and image.data.shape == (8 * (t + 2) + 2, 12 * (t + 2) + 2, 3)
    assert all(not layer.visible for layer in docks.well_viewer.channel_layers().values())
    calls = mosaic.calls_layer()
    assert len(calls.data) == len(used)
    table = calls.features.set_index("well")
    assert table.loc[used[0].name, "sirna"] == used[0].sirna
    cmap = confidence_colormap()
    for name, conf in ((used[0].name, 0.95), (used[1].name, 0.05)):
        i = list(calls.features["well"]).index(name)
        np.testing.assert_allclose(calls.face_color[i][:3], cmap.map(np.array([conf]))[0][:3],
                                   atol=0.02)
    hi = list(calls.features["well"]).index(used[0].name)
    lo = list(calls.features["well"]).index(used[1].name)
    assert calls.face_color[hi][:3].sum() > calls.face_color[lo][:3].sum()
    # labels are white on a darkened band of the tile: readable on bright and dark tiles
    from deepnoise_app.models.mosaic_calls import LABEL_BOX, label_colour

    y0, y1, x0, x1 = (round(f * t) for f in LABEL_BOX)
    for i, name in enumerate(calls.features["well"]):
        well = state.plate.wells[name]
        ty, tx = tile_origin(well.row, well.column, t)
        band = image.data[ty + y0:ty + y1, tx + x0:tx + x1]
        assert band.mean() < 90, name
        want = label_colour(band)
        assert want == "white" and calls.features["text_colour"][i] == want
        np.testing.assert_allclose(calls.text.color._values[i][:3],
                                   (0, 0, 0) if want == "black" else (1, 1, 1))
    # click in the middle of a tile: that well is selected everywhere
    target = used[5]
    y, x = tile_origin(target.row, target.column, t)
    viewer.layers.selection.active = image
    _click_world(qtbot, viewer, y + t / 2, x + t / 2)
    qtbot.waitUntil(lambda: state.well is target, timeout=5_000)
    selection = next(ly for ly in viewer.layers if ly.name == "mosaic selection")
    # the frame: a square marker on tile (0, 0), moved onto the well by the translate
    np.testing.assert_allclose(selection.data, [[t / 2, t / 2]])
    assert tuple(selection.translate) == pytest.approx((y, x))
    world = np.asarray(selection.data_to_world(selection.data[0]))
    assert mosaic.well_at_world(tuple(world)) == target.name
    assert selection.visible
    # the cached mosaic of the next plate comes back; going back to the well view
    mosaic.set_shown(False)
    assert not image.visible and any(ly.visible for ly in
                                     docks.well_viewer.channel_layers().values())


def test_plugin_widgets_share_state_in_plain_napari(make_napari_viewer, qtbot,
                                                    small_screen_path: Path) -> None:
    from deepnoise_app.plugin import get_reader, read_site_files

    viewer = make_napari_viewer()
    _dock, plate_map = viewer.window.add_plugin_dock_widget("deepnoise", "Plate map")
    _dock, well_viewer = viewer.window.add_plugin_dock_widget("deepnoise", "Well viewer")
    _dock, _mosaic = viewer.window.add_plugin_dock_widget("deepnoise", "Plate mosaic")
    assert plate_map.state is well_viewer.state is state_for(viewer)
    viewer.open(str(small_screen_path), plugin="deepnoise")
    state = state_for(viewer)
    assert state.screen is not None and state.plate is not None
    qtbot.waitUntil(lambda: well_viewer.loaded_well is not None, timeout=10_000)
    assert len(well_viewer.channel_layers()) == 6
    assert plate_map.map.plates == [state.plate]
    assert viewer.title.startswith("DeepNoise - ")
    # the site reader: one coloured layer per channel file of the site
    site_file = state.well.sites[0].channels[2]
    assert get_reader(str(site_file)) is read_site_files
    layers = read_site_files(str(site_file))
    assert len(layers) == 6 and layers[1][1]["contrast_limits"] == colours.channel_window(2)
    assert get_reader(str(small_screen_path / "train.csv")) is None


def test_npe2_manifest_validates() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "npe2", "validate", "deepnoise"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()


def test_real_rxrx1_sample_browses(rxrx1_sample: Path, make_napari_viewer, qtbot) -> None:
    # rxrx1_sample first: when the sample is absent it skips before napari's viewer fixture
    # is set up (that fixture's teardown needs the call phase to have run)
    _viewer, state, docks = _opened(make_napari_viewer, qtbot, rxrx1_sample)
    state.select_plate("HEPG2-01", 1)
    state.select_well("B02")
    _wait_loaded(qtbot, docks, state)
    layers = docks.well_viewer.channel_layers()
    assert layers[1].data.shape == (512, 512) and all(ly.visible for ly in layers.values())
    docks.well_viewer.set_site(2)  # site 2 lacks w5 and w6
    qtbot.waitUntil(lambda: "w5 missing" in docks.well_viewer.message.text(), timeout=10_000)
    assert not layers[5].visible and not layers[6].visible and layers[4].visible
    item = docks.browser.plate_item("HEPG2-01/1")
    assert int(item.text(3)) > 300  # most sites of the excerpt have no images
    assert "missing" in item.toolTip(0)
    assert state.plate.format.rows == 16 and state.plate.format.columns == 24


def test_demo_sample_data_reuses_its_layers(make_napari_viewer, qtbot, small_screen_path: Path,
                                            isolated_user_dirs: Path) -> None:
    from deepnoise_engine.screen.synthetic import DEMO_DIRNAME

    # the built-in demo screen is "already generated": a copy of the small screen
    shutil.copytree(small_screen_path, isolated_user_dirs / "data" / DEMO_DIRNAME)
    viewer = make_napari_viewer()
    viewer.open_sample("deepnoise", "demo_screen")
    state = state_for(viewer)
    assert state.screen is not None and state.well is not None
    from deepnoise_app.docks import installed_docks

    docks = installed_docks(viewer)
    assert docks is not None  # the sample opened the DeepNoise docks
    qtbot.waitUntil(lambda: docks.well_viewer.loaded_well == state.well.name, timeout=10_000)
    # the sample's channel layers are the well viewer's: no duplicates
    # (+ the mosaic's three layers, added hidden when the docks install)
    assert len(viewer.layers) == 6 + 3 and len(docks.well_viewer.channel_layers()) == 6
    # (their one invisible warm-up frame over, only the channels are shown)
    qtbot.waitUntil(lambda: sum(layer.visible for layer in viewer.layers) == 6, timeout=5_000)


def test_docks_lay_out_without_clipping_or_gaps(make_napari_viewer, qtbot, prediction_frame,
                                               small_screen_path: Path) -> None:
    viewer, state, docks = _opened(make_napari_viewer, qtbot, small_screen_path, show=True)
    plate = state.plate
    state.set_predictions({plate.key: prediction_frame(plate, {plate.used_wells()[0].name:
                                                               0.9})})
    docks.plate_map.set_mode("confidence")
    window = viewer.window._qt_window
    window.resize(1500, 900)  # as in the app: the right column is crowded
    qtbot.wait(300)
    pmap = docks.plate_map.map
    qtbot.waitUntil(lambda: pmap.isVisible() and pmap.height() > 0, timeout=5_000)
    # the plate map (and its legend at the bottom) is not cut off by a squeezed dock
    assert pmap.visibleRegion().boundingRect().height() == pmap.height()
    for key in ("plate_map", "view"):
        dock = docks.dock_widgets[key]
        assert dock.height() >= dock.widget().minimumSizeHint().height()
    # no empty gap under the site choice: the (empty) message label takes no room
    wv = docks.well_viewer
    assert wv.message.text() == "" and wv.message.isHidden()
    combo_bottom = wv.site_combo.mapTo(window, wv.site_combo.rect().bottomLeft()).y()
    button_top = docks.mosaic.show_button.mapTo(window, QPoint(0, 0)).y()
    assert 0 < button_top - combo_bottom < 24
    # names in the screen browser are not elided at the default dock width
    tree = docks.browser.tree
    item = docks.browser.plate_item(plate.key)
    for it in (item, item.parent()):
        depth = 2 if it is item else 1
        assert tree.columnWidth(0) >= (tree.indentation() * (depth + 1)
                                       + tree.fontMetrics().horizontalAdvance(it.text(0)))


def test_screen_opens_in_the_background_into_the_placeholder_layers(
        make_napari_viewer, qtbot, small_screen_path: Path, tmp_path: Path) -> None:
    from deepnoise_app.docks import open_screen_in_background
    from deepnoise_app.models.settings import Settings
    from deepnoise_app.well_viewer import PLACEHOLDER_SIZE

    viewer = make_napari_viewer()
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    # before any screen: the six channel layers exist, black, at RxRx1's size
    before = docks.well_viewer.channel_layers()
    assert sorted(before) == colours.known_channels()
    assert all(ly.data.shape == PLACEHOLDER_SIZE and not ly.data.any()
               for ly in before.values())
    opened, failed = [], []
    worker = open_screen_in_background(viewer, state, small_screen_path,
                                       opened=opened.append, failed=failed.append)
    assert state.screen is None  # read in the worker: nothing changed yet
    qtbot.waitUntil(lambda: bool(opened or failed), timeout=20_000)
    assert not failed and opened[0] is state.screen
    assert worker is not None and viewer.title.startswith("DeepNoise - ")
    assert str(small_screen_path) in Settings().recent_screens
    _wait_loaded(qtbot, docks, state)
    # the first well went into the same layer objects, at the screen's image size
    after = docks.well_viewer.channel_layers()
    assert {c: id(ly) for c, ly in after.items()} == {c: id(ly) for c, ly in before.items()}
    pixels = read_site(state.well.sites[0], list(state.screen.channels))
    for channel, layer in after.items():
        np.testing.assert_array_equal(layer.data, pixels[channel - 1])
    # a folder that is no screen: failed() gets the error, the open screen stays
    not_a_screen = tmp_path / "empty"
    not_a_screen.mkdir()
    open_screen_in_background(viewer, state, not_a_screen, opened=opened.append,
                              failed=failed.append)
    qtbot.waitUntil(lambda: bool(failed), timeout=20_000)
    assert str(not_a_screen) in str(failed[0]) and state.screen is opened[0]
    # a plate that does not exist: the screen opens, failed() says which plate
    failed.clear()
    open_screen_in_background(viewer, state, small_screen_path, plate="NOPE:9",
                              opened=opened.append, failed=failed.append)
    qtbot.waitUntil(lambda: bool(failed), timeout=20_000)
    assert "NOPE:9" in str(failed[0])
