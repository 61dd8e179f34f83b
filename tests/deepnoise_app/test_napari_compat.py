"""napari's private API is reached from deepnoise_app/napari_compat.py only, and is still there.

When a napari release moves one of the internals the app relies on, the first test fails
naming what moved (the app itself then keeps napari's defaults: docks stacked, no glyph
warm-up, no held repaints).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import deepnoise_app
from deepnoise_app import napari_compat
from deepnoise_app.state import state_for

APP = Path(deepnoise_app.__file__).parent

#: what only napari_compat may touch: napari's underscore names and the proxy's unwrapping
PRIVATE_NAPARI = re.compile(
    r"\._qt_window\b|\._qt_viewer\b|dockLayerControls|_font_manager|_font_info"
    r"|canvas\.native\b|__wrapped__|napari\._|from napari\.\w+\._|napari(\.\w+)*\._\w+"
)


@pytest.mark.parametrize("accessor", [
    napari_compat.main_window,
    napari_compat.canvas_widget,
    napari_compat.layer_controls_dock,
    napari_compat.canvas_text_font,
    napari_compat.text_overlay,
])
def test_napari_still_has_what_the_app_reaches(make_napari_viewer, accessor) -> None:
    viewer = make_napari_viewer()
    try:
        assert accessor(viewer) is not None
    except napari_compat.NapariMoved as exc:  # the message names the internal that moved
        pytest.fail(f"{accessor.__name__}: {exc}")


def test_plugin_widgets_get_the_viewer_behind_naparis_proxy(make_napari_viewer) -> None:
    from napari.utils._proxies import PublicOnlyProxy

    viewer = make_napari_viewer()
    proxy = PublicOnlyProxy(viewer)
    if napari_compat.unwrap_viewer(proxy) is not viewer:
        pytest.fail("napari moved PublicOnlyProxy's wrapped object (no __wrapped__): "
                    "update napari_compat.unwrap_viewer")
    assert state_for(proxy) is state_for(viewer)


def test_a_moved_internal_is_named() -> None:
    class Window:  # a napari whose Window lost its Qt main window
        pass

    class Viewer:
        window = Window()

    with pytest.raises(napari_compat.NapariMoved, match=r"_qt_window.*napari_compat"):
        napari_compat.main_window(Viewer())
    with pytest.raises(AttributeError):  # callers catch it as an AttributeError
        napari_compat.canvas_widget(Viewer())


def test_no_other_app_module_touches_napari_privates() -> None:
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        if path.name == "napari_compat.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PRIVATE_NAPARI.search(line):
                offenders.append(f"{path.relative_to(APP)}:{number}: {line.strip()}")
    assert not offenders, ("napari internals outside deepnoise_app/napari_compat.py:\n"
                           + "\n".join(offenders))


def test_the_scan_finds_private_access() -> None:
    for line in ("w = viewer.window._qt_window", "from napari._qt.qt_viewer import QtViewer",
                 "viewer.window._qt_viewer.canvas.native", "getattr(v, '__wrapped__', v)"):
        assert PRIVATE_NAPARI.search(line), line
    assert not PRIVATE_NAPARI.search("viewer.window.add_dock_widget(dock)")


def test_state_for_is_one_per_viewer() -> None:
    class Viewer:  # any weak-referenceable object stands for a viewer here
        pass

    a, b = Viewer(), Viewer()
    assert state_for(a) is state_for(a)
    assert state_for(a) is not state_for(b)
