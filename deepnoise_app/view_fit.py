"""Fit the canvas to what is shown: the well's channels or the plate mosaic, never both.

napari's ``reset_view`` (the home button, Ctrl+R) frames every layer, hidden ones too, so
going back from the mosaic left the well as a small square in a corner of the mosaic's
frame. One ``ViewFitter`` per viewer fits the camera to the visible layers, redoes any
napari reset the same way, and fits again when the canvas is resized while the view was
still the fitted one (a user's own zoom is kept).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer

from deepnoise_app.napari_compat import canvas_widget, keep_alive

_FITTERS: weakref.WeakValueDictionary[int, ViewFitter] = weakref.WeakValueDictionary()


def shown_layers(viewer: Any) -> list[Any]:
    """The visible layers that have something to show (an empty Points layer has none)."""
    return [layer for layer in viewer.layers
            if layer.visible and getattr(layer, "ndim", 0) and _has_data(layer)]


def _has_data(layer: Any) -> bool:
    data = getattr(layer, "data", None)
    try:
        return len(data) > 0
    except TypeError:
        return data is not None


class ViewFitter(QObject):
    """Keeps one viewer's camera fitted to its visible layers (see the module docstring)."""

    def __init__(self, viewer: Any) -> None:
        super().__init__()
        self.viewer = viewer
        self._fitting = False
        self._fitted: tuple[tuple[float, ...], float] | None = None
        self._hooks: list[Callable[[], None]] = []
        self._framed: list[Any] = []  # the layers the last fit was asked to frame
        viewer.events.reset_view.connect(self._napari_reset)
        try:
            self._canvas = canvas_widget(viewer)
        except AttributeError:  # no window (a headless model): no resize to follow
            self._canvas = None
        if self._canvas is not None:
            self._canvas.installEventFilter(self)
            self.setParent(self._canvas)  # lives and dies with the canvas

    @property
    def has_canvas(self) -> bool:
        """The viewer has a canvas widget (a window): resizes are followed."""
        return self._canvas is not None

    def fit(self, layers: list[Any] | None = None) -> None:
        """Frame ``layers`` (default: those of the last fit still shown, else the visible
        layers; all layers when none is visible). The well viewer and the mosaic name
        their own layers: another one may be visible for a moment (the warm-up's frame)."""
        if layers is not None:
            self._framed = list(layers)
        else:
            layers = [ly for ly in self._framed if ly in self.viewer.layers and ly.visible]
            layers = layers or shown_layers(self.viewer)
        layers = [ly for ly in layers if _has_data(ly)] or None
        self._fitting = True
        try:
            self.viewer.reset_view(layers=layers)
        finally:
            self._fitting = False
        camera = self.viewer.camera
        self._fitted = (tuple(camera.center), float(camera.zoom))

    @property
    def is_fitted(self) -> bool:
        """True while the camera is where the last fit put it (the user has not moved it)."""
        camera = self.viewer.camera
        return self._fitted == (tuple(camera.center), float(camera.zoom))

    def _napari_reset(self, *_args: Any) -> None:
        if not self._fitting:  # napari's own reset framed hidden layers too: redo it
            self.fit()

    def on_resize(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` after each canvas resize (the caption wraps to the new width)."""
        self._hooks.append(hook)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            refit = self._fitted is not None and self.is_fitted
            # after napari has taken the new canvas size
            QTimer.singleShot(0, self, lambda: self._resized(refit))
        return False

    def _resized(self, refit: bool) -> None:
        if refit:
            self.fit()
        for hook in self._hooks:
            hook()


def view_fitter(viewer: Any) -> ViewFitter:
    """The ViewFitter of ``viewer`` (created on first use)."""
    fitter = _FITTERS.get(id(viewer))
    if fitter is None or fitter.viewer is not viewer:
        fitter = ViewFitter(viewer)
        _FITTERS[id(viewer)] = fitter
        if not fitter.has_canvas:  # no Qt parent keeps it alive: the viewer does
            keep_alive(viewer, "view_fitter", fitter)
    return fitter


def canvas_width(viewer: Any) -> int | None:
    """The canvas's width in pixels (None without a window)."""
    try:
        return int(canvas_widget(viewer).width())
    except AttributeError:
        return None


def fit_view(viewer: Any, layers: list[Any] | None = None) -> None:
    """Fit ``viewer``'s camera to ``layers`` (default: its visible layers)."""
    view_fitter(viewer).fit(layers)


WINDOW_SHARE = 0.9  # of the screen's free area the app's window opens at


def size_to_screen(window: Any, share: float = WINDOW_SHARE) -> tuple[int, int]:
    """Size ``window`` to ``share`` of the free area of the screen it is on and centre it
    there (napari's own first size, about 1090 x 690, left a large screen mostly empty
    and the docks cramped). Returns the new (width, height)."""
    from qtpy.QtWidgets import QApplication

    screen = window.screen() or QApplication.primaryScreen()
    if screen is None:
        return window.width(), window.height()
    free = screen.availableGeometry()
    width, height = int(free.width() * share), int(free.height() * share)
    window.resize(width, height)
    window.move(free.x() + (free.width() - width) // 2, free.y() + (free.height() - height) // 2)
    return width, height
