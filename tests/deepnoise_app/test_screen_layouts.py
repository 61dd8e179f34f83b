"""The app opens the LoadData and OME-Zarr layouts through the engine's ``open_screen``
and shows a well's pixels from their files (no pack cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnoise_app.docks import install_docks
from deepnoise_app.models.screen_opening import open_screen_path
from deepnoise_app.state import state_for
from deepnoise_engine.screen.convert import convert_to_omezarr
from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.jump_style import LoadDataSpec, write_loaddata_screen

pytestmark = [pytest.mark.usefixtures("isolated_user_dirs"), pytest.mark.gui]


@pytest.mark.parametrize("layout", ["loaddata", "ome-zarr"])
def test_app_shows_a_well_of_the_layout(make_napari_viewer, qtbot, tmp_path: Path,
                                        layout: str) -> None:
    root = tmp_path / "jump"
    write_loaddata_screen(root, LoadDataSpec(wells=["A01", "B03"], plates_per_batch=1))
    if layout == "ome-zarr":
        from deepnoise_engine.screen import open_screen

        convert_to_omezarr(open_screen(root), tmp_path / "plates")
        root = tmp_path / "plates"
    viewer = make_napari_viewer()
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    screen = open_screen_path(state, root)
    assert screen.layout == layout
    qtbot.waitUntil(lambda: state.well is not None
                    and docks.well_viewer.loaded_well == state.well.name, timeout=10_000)
    layers = docks.well_viewer.channel_layers()
    assert set(screen.channels) <= set(layers) and screen.channels == [1, 2, 3, 4, 5]
    pixels = read_site(state.well.sites[0], screen.channels)
    assert pixels.any()
    for channel in screen.channels:
        np.testing.assert_array_equal(layers[channel].data, pixels[channel - 1])
