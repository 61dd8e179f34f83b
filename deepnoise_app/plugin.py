"""npe2 contributions: readers (screen folder, a site's image files), widgets, sample data.

Widgets opened from napari's Plugins menu share one AppState per viewer (``state_for``), so
the browser, plate map, well viewer and mosaic stay in step in a plain ``napari`` too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepnoise_app.colormaps import channel_layer_data
from deepnoise_app.docks import choose_screen_folder
from deepnoise_app.models.state import AppState
from deepnoise_app.napari_compat import unwrap_viewer
from deepnoise_app.plate_map import PlateMapDock
from deepnoise_app.plate_mosaic import PlateMosaic
from deepnoise_app.screen_browser import ScreenBrowser
from deepnoise_app.state import state_for
from deepnoise_app.well_viewer import WellViewer

LayerData = list[tuple[Any, ...]]
_SITE_FILE_RE = re.compile(r"^(?P<stem>.+_s\d+)_w(?P<channel>\d+)\.png$", re.IGNORECASE)


# -- readers ----------------------------------------------------------------------------------
def _is_screen_folder(path: Path) -> bool:
    from deepnoise_engine.screen.errors import ScreenError
    from deepnoise_engine.screen.open import detect_layout

    if not path.is_dir():
        return False
    try:
        detect_layout(path)
    except ScreenError:
        return False
    return True


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], LayerData] | None:
    """npe2 reader: a screen folder, or one channel file of a site (``B02_s1_w1.png``)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if _is_screen_folder(p):
        return read_screen
    if p.is_file() and _SITE_FILE_RE.match(p.name):
        return read_site_files
    return None


def read_site_files(path: str | list[str]) -> LayerData:
    """All channel files of the site ``path`` belongs to -> one coloured layer per channel."""
    from deepnoise_engine.screen.images import read_png

    p = Path(path[0] if isinstance(path, list) else path)
    match = _SITE_FILE_RE.match(p.name)
    if match is None:
        raise ValueError(f"{p}: not a site channel file (expected WELL_sS_wC.png)")
    stem = match["stem"]
    files: dict[int, Path] = {}
    for sibling in p.parent.iterdir():
        m = _SITE_FILE_RE.match(sibling.name)
        if m and m["stem"] == stem:
            files[int(m["channel"])] = sibling
    channels = sorted(files)
    planes = np.stack([read_png(files[c]) for c in channels])
    layers = channel_layer_data(planes, channels)
    for _data, kwargs, _kind in layers:
        kwargs["name"] = f"{stem} {kwargs['name']}"
        kwargs["metadata"] = {"source_file": str(files[kwargs["metadata"]["channel"]])}
    return layers


def _current_viewer() -> Any:
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        raise RuntimeError("DeepNoise: no napari viewer to open the screen in")
    return viewer


def open_in_viewer(viewer: Any, path: str | Path) -> AppState:
    """Open a screen folder in ``viewer``'s AppState; adds the DeepNoise docks if none are
    open. The first plate and well are selected."""
    from deepnoise_app.docks import install_docks
    from deepnoise_app.models.screen_opening import open_screen_path
    from deepnoise_app.well_viewer import well_viewer_for

    state = state_for(viewer)
    if well_viewer_for(viewer) is None:
        install_docks(viewer, state)
    screen = open_screen_path(state, path)
    viewer.title = f"DeepNoise - {screen.name or Path(screen.root).name}"
    return state


def read_screen(path: str | list[str]) -> LayerData:
    """Open a screen folder in the current viewer; the well viewer adds the channel layers."""
    p = Path(path[0] if isinstance(path, list) else path)
    open_in_viewer(_current_viewer(), p)
    return [(None,)]


# -- sample data ------------------------------------------------------------------------------
def demo_screen_sample() -> LayerData:
    """The built-in demo screen (generated on first use): opens it in the current viewer and
    returns the first well's channels (tagged, so the well viewer keeps reusing them)."""
    from deepnoise_app.models.thumbnails import PixelSource
    from deepnoise_app.models.well_loading import load_well_planes
    from deepnoise_engine.screen.synthetic import ensure_demo_screen

    viewer = _current_viewer()
    state = open_in_viewer(viewer, ensure_demo_screen())
    if state.well is None or state.screen is None:
        raise RuntimeError("the demo screen has no usable well")
    channels = list(state.screen.channels)
    planes, _missing, _shown = load_well_planes(PixelSource(state.screen), state.well,
                                                channels, 1)
    return channel_layer_data(planes, channels)


# -- widgets (classes: napari passes the viewer to an ``__init__(napari_viewer)``) ----------
class ScreenBrowserWidget(ScreenBrowser):
    """Screen browser for napari's Plugins menu."""

    def __init__(self, napari_viewer: Any) -> None:
        viewer = unwrap_viewer(napari_viewer)
        state = state_for(viewer)
        super().__init__(state)
        self.open_requested.connect(lambda: choose_screen_folder(viewer, state))


class PlateMapWidget(PlateMapDock):
    """Plate map for napari's Plugins menu."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(state_for(napari_viewer))


class WellViewerWidget(WellViewer):
    """Well viewer for napari's Plugins menu."""

    def __init__(self, napari_viewer: Any) -> None:
        viewer = unwrap_viewer(napari_viewer)
        super().__init__(viewer, state_for(viewer))


class PlateMosaicWidget(PlateMosaic):
    """Plate mosaic for napari's Plugins menu."""

    def __init__(self, napari_viewer: Any) -> None:
        viewer = unwrap_viewer(napari_viewer)
        super().__init__(viewer, state_for(viewer))
