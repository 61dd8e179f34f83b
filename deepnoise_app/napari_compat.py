"""Every use of napari's private API, and what differs between napari versions, in one place.

napari gives plugins no public handle on its Qt main window, its canvas widget, its layer
controls dock or its canvas font, and hands plugin widgets a ``PublicOnlyProxy`` of the
viewer. The app needs each of them (tabbing docks, sizing the window, holding a repaint,
warming glyphs, sharing one state per viewer), so this module reaches them; nothing else in
``deepnoise_app`` touches a napari underscore name (tests/deepnoise_app/test_napari_compat.py
checks both). When a napari release moves one, an accessor raises :class:`NapariMoved`
naming what moved, and the callers keep napari's defaults instead.
"""

from __future__ import annotations

from typing import Any


class NapariMoved(AttributeError):
    """A napari internal the app relies on is no longer where it was."""


def _reach(obj: Any, path: str, what: str) -> Any:
    """``obj.<path>`` (dotted), or NapariMoved naming ``what`` and the missing step."""
    for name in path.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError as exc:
            raise NapariMoved(
                f"napari moved {what}: no attribute {name!r} (path {path!r}); "
                "update deepnoise_app/napari_compat.py"
            ) from exc
    return obj


def unwrap_viewer(viewer: Any) -> Any:
    """The real viewer behind napari's PublicOnlyProxy (plugin widgets receive the proxy)."""
    return getattr(viewer, "__wrapped__", viewer)


def main_window(viewer: Any) -> Any:
    """The viewer's Qt main window (a QMainWindow): menus, tabified docks, size, icon."""
    return _reach(viewer, "window._qt_window", "the Qt main window (Window._qt_window)")


def _qt_viewer(viewer: Any) -> Any:
    return _reach(viewer, "window._qt_viewer", "the QtViewer (Window._qt_viewer)")


def canvas_widget(viewer: Any) -> Any:
    """The canvas's native Qt widget (its size; holding its repaint)."""
    return _reach(_qt_viewer(viewer), "canvas.native", "the canvas widget (canvas.native)")


def layer_controls_dock(viewer: Any) -> Any:
    """napari's layer controls dock widget."""
    return _reach(_qt_viewer(viewer), "dockLayerControls",
                  "the layer controls dock (QtViewer.dockLayerControls)")


def canvas_text_font(viewer: Any) -> Any:
    """The texture font every canvas text visual of the viewer shares (one per face in
    the viewer's font manager)."""
    qt_viewer = _qt_viewer(viewer)
    manager = _reach(qt_viewer, "_font_manager", "the canvas font manager (_font_manager)")
    face = _reach(qt_viewer, "canvas._font_info.face", "the canvas font face (_font_info)")
    return manager.get_font(face)


def text_overlay(viewer: Any) -> Any:
    """The canvas text overlay: ``viewer.canvas.overlays["text"]`` since napari 0.9,
    ``viewer.text_overlay`` before (public in both; the app supports napari >= 0.5)."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    if overlays is not None and "text" in overlays:
        return overlays["text"]
    return viewer.text_overlay


def keep_alive(owner: Any, name: str, value: Any) -> None:
    """Keep ``value`` alive as long as ``owner`` (a napari object) by hanging it on it
    (Qt actions, timers, workers that nothing else references)."""
    setattr(owner, f"_deepnoise_{name}", value)
