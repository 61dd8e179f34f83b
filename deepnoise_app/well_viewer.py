"""Well viewer: the selected well's sites as napari image layers, one per channel.

Each channel is a layer with the RxRx1 colour (a black -> colour colormap), the RxRx1 window as
explicit contrast limits and additive blending; visibility per channel is napari's layer list.
Pixels are read in a worker thread (pack cache first, else the PNG/TIFF files) and the existing
layers' ``.data`` is replaced, so switching wells never rebuilds layers. Missing channels are
shown as hidden, empty layers with a message - never a crash.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from deepnoise_app.canvas_caption import show_text
from deepnoise_app.canvas_warmup import WARM_DRAW_MS
from deepnoise_app.colormaps import CHANNEL_LAYER_TAG, channel_layer_data
from deepnoise_app.models import colours
from deepnoise_app.models.captions import (
    missing_channels_suffix,
    well_caption,
    well_header,
    well_messages,
)
from deepnoise_app.models.state import AppState
from deepnoise_app.models.thumbnails import PixelSource, shared_pixels
from deepnoise_app.models.well_loading import (
    load_well_planes,
    max_sites,
    site_choices,
    sites_to_show,
)
from deepnoise_app.napari_compat import canvas_widget, text_overlay
from deepnoise_app.view_fit import fit_view
from deepnoise_engine.screen.model import Screen, Well

PLACEHOLDER_SIZE = (512, 512)  # RxRx1's image size: the channel layers' size before a screen
THUMBNAIL_DELAY_MS = 400  # layer-list thumbnails follow once browsing pauses this long

_BY_VIEWER: weakref.WeakValueDictionary[int, WellViewer] = weakref.WeakValueDictionary()


def well_viewer_for(viewer: Any) -> WellViewer | None:
    """The WellViewer of ``viewer`` (the mosaic hides its layers while shown), if any."""
    return _BY_VIEWER.get(id(viewer))


def _set_text(label: QLabel, text: str) -> None:
    """Set a label's text only when it changes (each change repaints the window)."""
    if label.text() != text:
        label.setText(text)


def _same_array_kind(old: Any, new: np.ndarray) -> bool:
    """True when ``new`` can be copied into ``old`` (same shape and dtype, writable numpy)."""
    return (isinstance(old, np.ndarray) and old.shape == new.shape and old.dtype == new.dtype
            and old.flags.writeable)


@contextlib.contextmanager
def frame_after_a_turn(viewer: Any) -> Iterator[None]:
    """Hold the canvas's repaint while the block runs and release it from a timer: the
    event loop gets a turn (input, timers) between our layer updates and napari's frame,
    instead of running both back to back."""
    try:
        native = canvas_widget(viewer)
    except AttributeError:  # no window, or napari internals moved: updates as usual
        native = None
    if native is None or not native.updatesEnabled():
        yield
        return
    native.setUpdatesEnabled(False)
    try:
        yield
    finally:
        # the canvas as the timer's context: no call once the viewer is closed
        QTimer.singleShot(1, native, lambda: native.setUpdatesEnabled(True))


class WellViewer(QWidget):
    """Dock controls (site choice, messages) + the channel layers in ``viewer``."""

    loaded = Signal(str)  # well name once its pixels are on screen

    def __init__(self, viewer: Any, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.state = state
        self.setObjectName("deepnoise-well-viewer")
        self.site_combo = QComboBox()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setVisible(False)  # shown only with a message: no empty gap in the dock
        self.header = QLabel("No well selected")
        row = QHBoxLayout()
        row.addWidget(QLabel("Sites:"))
        row.addWidget(self.site_combo, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 0)  # the mosaic controls follow directly
        layout.addWidget(self.header)
        layout.addLayout(row)
        layout.addWidget(self.message)

        self.pixels: PixelSource | None = None
        self._screen: Screen | None = None
        self._generation = 0
        self._worker: Any = None
        self._shape: tuple[int, ...] | None = None
        self._hidden_missing: set[int] = set()
        self._last_missing: dict[int, str] = {}
        self.shown = True  # False while the plate mosaic is shown instead
        self.last_load_s = 0.0
        self.loaded_well: str | None = None  # the well whose pixels are on screen
        self._stale_thumbnails: set[int] = set()
        self._thumbnail_timer = QTimer(self)
        self._thumbnail_timer.setSingleShot(True)
        self._thumbnail_timer.setInterval(THUMBNAIL_DELAY_MS)
        self._thumbnail_timer.timeout.connect(self._refresh_thumbnails)
        self._placeholders: set[int] = set()  # black channel layers no well has filled yet
        self._fill_sites(None)
        _BY_VIEWER[id(viewer)] = self
        self.create_layers(list(state.screen.channels) if state.screen is not None
                           else colours.known_channels())
        viewer.layers.events.inserted.connect(self._layer_inserted)

        self.site_combo.currentIndexChanged.connect(lambda _i: self.reload())
        state.screen_changed.connect(self._screen_changed)
        state.well_changed.connect(self._well_changed)
        state.predictions_changed.connect(self._update_text)
        state.prediction_mode_changed.connect(lambda _m: self._update_text())
        if state.screen is not None:
            self._screen_changed(state.screen)
        if state.well is not None:
            self._well_changed(state.well)

    # -- layers -----------------------------------------------------------------------------
    def channel_layers(self) -> dict[int, Any]:
        """Channel number -> this viewer's layer (only those still in the viewer)."""
        out = {}
        for layer in self.viewer.layers:
            meta = getattr(layer, "metadata", {}) or {}
            if meta.get("deepnoise") == CHANNEL_LAYER_TAG:
                out[int(meta["channel"])] = layer
        return out

    def create_layers(self, channels: list[int]) -> None:
        """Add the missing channel layers as black placeholders of RxRx1's 512 px: making a
        layer costs napari 100+ ms and its first frame compiles shaders, so this happens at
        start; the first well's pixels are then copied in place."""
        existing = self.channel_layers()
        for channel in channels:
            if channel not in existing:
                data, kwargs, _kind = channel_layer_data(
                    np.zeros((1, *PLACEHOLDER_SIZE), np.uint8), [channel])[0]
                self.viewer.add_image(data, **{**kwargs, "visible": self.shown})
                self._placeholders.add(channel)
                self._shape = None  # the first well fits the view (the window has its size)

    def _layer_inserted(self, event: Any) -> None:
        """A tagged channel layer from elsewhere (the demo sample's) replaces our placeholder."""
        meta = getattr(event.value, "metadata", {}) or {}
        if (meta.get("deepnoise") != CHANNEL_LAYER_TAG
                or int(meta["channel"]) not in self._placeholders):
            return
        channel = int(meta["channel"])
        placeholders = [ly for ly in self.viewer.layers if ly is not event.value
                        and (ly.metadata or {}).get("deepnoise") == CHANNEL_LAYER_TAG
                        and int(ly.metadata["channel"]) == channel]
        self._placeholders.discard(channel)
        self._shape = None
        # not inside the list's own insert event: napari is still handling it
        QTimer.singleShot(0, self, lambda: self._remove_layers(placeholders))

    def _remove_layers(self, layers: list[Any]) -> None:
        for layer in layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

    def warm_up_drawing(self) -> None:
        """Draw the canvas caption once, blank: its shaders compile now, not in the first
        well's frame (the placeholder channel layers are drawn from the start)."""
        if not text_overlay(self.viewer).visible:
            show_text(self.viewer, " ")  # a blank caption: drawn, nothing to see
            QTimer.singleShot(WARM_DRAW_MS, self, self._clear_blank_caption)

    def _clear_blank_caption(self) -> None:
        if text_overlay(self.viewer).text == " ":
            show_text(self.viewer, "")

    def _size_placeholders(self, size: tuple[int, int] | None) -> None:
        """Give the placeholders the screen's image size when it is not the default one."""
        if not size:
            return
        for channel, layer in self.channel_layers().items():
            if channel in self._placeholders and layer.data.shape != tuple(size):
                layer.data = np.zeros(size, np.uint8)
                self._shape = None  # the first well fits the view to the new size

    def _apply(self, planes: np.ndarray, missing: dict[int, str], channels: list[int]) -> None:
        """Put all channels on screen now."""
        for i in range(len(channels)):
            self._apply_channel(planes, missing, channels, i)
        self._finish_apply(planes)

    def _apply_channel(
        self, planes: np.ndarray, missing: dict[int, str], channels: list[int], i: int
    ) -> None:
        channel = channels[i]
        layer = self.channel_layers().get(channel)
        if layer is None:
            data, kwargs, _kind = channel_layer_data(planes[i : i + 1], [channel])[0]
            layer = self.viewer.add_image(data, **kwargs)
            self._shape = None  # new layer: reset the view afterwards
        elif _same_array_kind(layer.data, planes[i]):
            # in place + refresh without extent: half the cost of the .data setter,
            # which recomputes the viewer's dims for every layer
            np.copyto(layer.data, planes[i])
            # the layer-list thumbnail waits until browsing pauses (_refresh_thumbnails):
            # it is a resample and a list repaint per channel inside the load's frame
            layer.refresh(extent=False, thumbnail=False, highlight=False)
            self._stale_thumbnails.add(channel)
        else:
            layer.data = planes[i]
        self._placeholders.discard(channel)  # filled: no longer a placeholder
        # hide absent channels; show them again once present, unless the user hid them
        if channel in missing:
            if layer.visible:
                self._hidden_missing.add(channel)
                layer.visible = False
        elif channel in self._hidden_missing:
            self._hidden_missing.discard(channel)
            if layer.visible != self.shown:
                layer.visible = self.shown
        elif not self.shown and layer.visible:
            layer.visible = False

    def _finish_apply(self, planes: np.ndarray) -> None:
        if self._stale_thumbnails:
            self._thumbnail_timer.start()  # restarts: only once browsing pauses
        reset = self._shape != planes.shape[1:]
        self._shape = planes.shape[1:]
        if reset and self.shown:
            self.fit_view()

    @property
    def thumbnails_pending(self) -> bool:
        """True while layer-list thumbnails still show an earlier well."""
        return bool(self._stale_thumbnails)

    def _refresh_thumbnails(self) -> None:
        """Bring one stale layer-list thumbnail up to date per event-loop turn."""
        layers = self.channel_layers()
        while self._stale_thumbnails:
            layer = layers.get(self._stale_thumbnails.pop())
            if layer is not None:
                layer.refresh(data_displayed=False, highlight=False, extent=False)
                break
        if self._stale_thumbnails:
            QTimer.singleShot(0, self, self._refresh_thumbnails)

    def fit_view(self) -> None:
        """Frame the well's shown channels."""
        channels = self.channel_layers()
        layers = [ly for c, ly in channels.items() if c not in self._hidden_missing]
        fit_view(self.viewer, layers or list(channels.values()))

    def set_shown(self, shown: bool) -> None:
        """Show or hide the channel layers (the mosaic hides them while it is shown)."""
        self.shown = shown
        for channel, layer in self.channel_layers().items():
            visible = shown and channel not in self._hidden_missing
            if layer.visible != visible:
                layer.visible = visible
        if shown:
            self._update_text()

    # -- loading ----------------------------------------------------------------------------
    def _screen_changed(self, screen: Screen | None) -> None:
        self._screen = screen
        self.pixels = shared_pixels(screen) if screen is not None else None
        self._fill_sites(screen)
        self._shape = None  # the new screen's first well fits the view to its size
        self.loaded_well = None
        if screen is not None:
            self._drop_other_channels(list(screen.channels))
            self.create_layers(list(screen.channels))
            self._size_placeholders(screen.image_size)

    def _drop_other_channels(self, channels: list[int]) -> None:
        """Remove the channel layers the new screen does not have: they held the previous
        screen's pixels, shown in the composite over the new well's."""
        stale = [layer for channel, layer in self.channel_layers().items()
                 if channel not in channels]
        for channel in [c for c in self._placeholders if c not in channels]:
            self._placeholders.discard(channel)
        self._hidden_missing &= set(channels)
        self._stale_thumbnails &= set(channels)
        self._remove_layers(stale)

    def _fill_sites(self, screen: Screen | None) -> None:
        current = self.site_combo.currentData()
        self.site_combo.blockSignals(True)
        self.site_combo.clear()
        for label, choice in site_choices(max_sites(screen) if screen is not None else 0):
            self.site_combo.addItem(label, choice)
        index = self.site_combo.findData(current)
        self.site_combo.setCurrentIndex(max(index, 0))
        self.site_combo.blockSignals(False)

    def set_site(self, site: int) -> None:
        """Show site ``site`` (1-based) or ALL_SITES."""
        index = self.site_combo.findData(site)
        if index < 0:
            raise ValueError(f"no site choice {site}")
        self.site_combo.setCurrentIndex(index)

    def _well_changed(self, well: Well | None) -> None:
        if well is None:
            self.header.setText("No well selected")
            self._update_text()
            return
        # the dock's header now, with the selection's repaint: a widget change at load time
        # would recompose the window in the same turn as the canvas's new frame
        site = self.site_combo.currentData()
        shown = [s.index for s in sites_to_show(well, 1 if site is None else int(site))]
        _set_text(self.header, well_header(well, shown))
        self.reload()

    def reload(self, *, block: bool = False) -> None:
        """(Re)load the selected well; ``block=True`` reads in the calling thread."""
        well = self.state.well
        if well is None or self.pixels is None or self._screen is None:
            return
        channels = list(self._screen.channels)
        site = self.site_combo.currentData()
        site = 1 if site is None else int(site)
        self._generation += 1
        generation = self._generation
        started = time.perf_counter()
        # no "Loading..." label: every widget repaint recomposes the whole window (a GL
        # canvas is in it), which costs more than the load itself without a GPU
        pixels = self.pixels

        def work() -> tuple[int, Well, np.ndarray, dict[int, str], list[int]]:
            planes, missing, shown = load_well_planes(pixels, well, channels, site)
            return generation, well, planes, missing, shown

        def finish(w: Well, planes: np.ndarray, missing: dict[int, str], shown: list[int]) -> None:
            self._finish_apply(planes)
            self.last_load_s = time.perf_counter() - started
            self.loaded_well = w.name
            self._show_result(w, missing, shown)
            self.loaded.emit(w.name)

        def done(result: tuple[int, Well, np.ndarray, dict[int, str], list[int]]) -> None:
            gen, w, planes, missing, shown = result
            if gen != self._generation:  # a newer selection won
                return
            # all channels in one event-loop turn: napari then renders the canvas once
            # (one channel per turn looked smoother but made software GL draw six frames)
            with frame_after_a_turn(self.viewer):
                self._apply(planes, missing, channels)
                finish(w, planes, missing, shown)

        if block:
            done(work())
            return
        from superqt.utils import create_worker

        worker = create_worker(work, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(done)
        worker.errored.connect(lambda exc: self._show_error(f"Cannot read {well.name}: {exc}"))
        self._worker = worker
        worker.start()

    def _show_error(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(True)
        self._fit_message()

    def _fit_message(self) -> None:
        """Reserve the wrapped message's full height: the dock layouts ignore a word-wrapped
        label's height-for-width and cut off its second line."""
        if self.message.isHidden():
            return
        margins = self.layout().contentsMargins()
        width = self.width() - margins.left() - margins.right()  # the label spans the widget
        height = self.message.heightForWidth(max(50, width))
        if height > 0 and height != self.message.minimumHeight():
            self.message.setMinimumHeight(height)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_message()

    def _show_result(self, well: Well, missing: dict[int, str], shown: list[int]) -> None:
        _set_text(self.header, well_header(well, shown))
        lines = well_messages(well, missing, shown)
        _set_text(self.message, "\n".join(lines))
        if self.message.isHidden() == bool(lines):
            self.message.setVisible(bool(lines))
        self._fit_message()
        style = "color: rgb(230,150,60);" if lines else ""
        if self.message.styleSheet() != style:
            self.message.setStyleSheet(style)
        self._last_missing = dict(missing)
        self._update_text()

    def _update_text(self) -> None:
        if not self.shown:
            return
        well = self.state.well
        prediction = self.state.well_prediction(well.name) if well is not None else None
        text = well_caption(self.state.plate, well, prediction)
        if well is not None:
            text += missing_channels_suffix(self._last_missing)
        show_text(self.viewer, text)
