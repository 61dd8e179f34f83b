"""Plate mosaic: every well's thumbnail tiled into one plate image, with the calls on top.

Layers: one RGB image (``plate mosaic``: thumbnails are colour composites, see thumbnails.py),
one Points layer (``mosaic calls``: a marker per well in the tile's corner, face colour from the
``confidence`` feature through the confidence colormap, text = the called siRNA) and a one-
square Points layer for the selection. Thumbnails are built in a worker thread and cached
(memory + disk). A click on a tile selects the well everywhere; a double click opens it in the
well viewer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.canvas_caption import show_text
from deepnoise_app.canvas_warmup import draw_once_invisibly
from deepnoise_app.colormaps import confidence_colormap
from deepnoise_app.models.captions import mosaic_caption, mosaic_status
from deepnoise_app.models.mosaic_calls import (
    CALL_DEFAULTS,
    call_features,
    label_translation,
    shade_label_boxes,
    typed_calls,
)
from deepnoise_app.models.state import AppState
from deepnoise_app.models.thumbnails import (
    MOSAIC_GAP,
    PlateThumbnails,
    ThumbnailCache,
    mosaic_image,
    shared_pixels,
    thumbnail_sizes,
    tile_at,
    tile_origin,
)
from deepnoise_app.view_fit import fit_view
from deepnoise_app.well_viewer import WellViewer, well_viewer_for
from deepnoise_app.workers import run_with_progress
from deepnoise_engine.screen.model import Plate, Screen, Well

IMAGE_TAG = "deepnoise-mosaic"
POINTS_TAG = "deepnoise-mosaic-calls"
SELECTION_TAG = "deepnoise-mosaic-selection"
PROGRESS_AFTER_S = 0.3  # the thumbnail progress bar shows once a build takes this long
IDLE_STATUS = "Click a tile to select a well, double-click to open it."
SELECTION_BORDER = 0.09  # the selection frame's width, a fraction of the marker's size


def sliced_while_hidden(layer: Any) -> None:
    """Bring a hidden layer's view slice up to date after its data changed.

    napari slices only visible layers, yet draws every layer's text on a zoom change:
    a hidden calls layer kept the old plate's point indices over its new (fewer) labels,
    an IndexError in every frame (after a screen change, or predictions while hidden)."""
    if not layer.visible:
        layer.set_view_slice()


class PlateMosaic(QWidget):
    """Dock controls for the mosaic and the mosaic layers in ``viewer``."""

    mosaic_ready = Signal(str)  # plate key once its mosaic is on screen

    def __init__(
        self,
        viewer: Any,
        state: AppState,
        well_viewer: WellViewer | None = None,
        parent: QWidget | None = None,
        *,
        thumbnail_size: int = 64,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.state = state
        self._well_viewer = well_viewer
        self.setObjectName("deepnoise-plate-mosaic")
        self._preferred_size = thumbnail_size
        self._build_controls()
        self.cache: ThumbnailCache | None = None
        self.shown = False
        self.thumbs: PlateThumbnails | None = None
        self._base_image: np.ndarray | None = None  # the mosaic without label bands
        self._plate: Plate | None = None
        self._cancel: threading.Event | None = None
        self._worker: Any = None
        self.last_build_s = 0.0
        self.warming = False  # the mosaic layers' invisible first draw is under way

        self.show_button.toggled.connect(self.set_shown)
        self.size_combo.activated.connect(lambda _i: self._size_chosen())
        state.screen_changed.connect(self._screen_changed)
        state.plate_changed.connect(self._plate_changed)
        state.well_changed.connect(self._well_changed)
        state.predictions_changed.connect(self._update_calls)
        state.prediction_mode_changed.connect(lambda _m: self._update_calls())
        viewer.mouse_drag_callbacks.append(self._on_mouse_press)
        viewer.mouse_double_click_callbacks.append(self._on_double_click)
        if state.screen is not None:
            self._screen_changed(state.screen)
        self.create_layers()

    def _build_controls(self) -> None:
        """The mosaic button, the thumbnail sizes and the status line (or progress bar)."""
        self.show_button = QPushButton("Show plate mosaic")
        self.show_button.setCheckable(True)
        self.size_combo = QComboBox()
        self._offer_sizes(None)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m thumbnails")
        self.status = QLabel(IDLE_STATUS)
        self.status.setWordWrap(True)
        # room for two lines, always: a label that grows relays out the docks, which
        # resizes the canvas and redraws the whole window (a long frame without a GPU)
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing() + 4)
        # the progress bar takes the status line's place while thumbnails are built
        self.status_stack = QStackedWidget()
        self.status_stack.addWidget(self.status)
        self.status_stack.addWidget(self.progress)
        row = QHBoxLayout()
        row.addWidget(self.show_button)
        row.addWidget(self.size_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.status_stack)


    def create_layers(self) -> None:
        """Add the mosaic's layers, hidden, now: creating a layer (its controls, its visual)
        takes napari 100-250 ms, which would otherwise stall the first "Show plate mosaic"."""
        if self.image_layer() is None:
            self.viewer.add_image(np.zeros((1, 1, 3), np.uint8), name="plate mosaic", rgb=True,
                                  visible=False, metadata={"deepnoise": IMAGE_TAG})
        if self.calls_layer() is None:
            # typed columns: napari keeps a feature's dtype, and the confidence colormap
            # needs a float column once points arrive
            self._add_calls_layer(np.zeros((0, 2)), typed_calls([]), self.size)
        if self._layer(SELECTION_TAG) is None:
            self._add_selection_layer(self.size, (0.0, 0.0))

    def warm_up_drawing(self) -> None:
        """Draw the (empty) mosaic layers once, invisibly: their shaders compile now (the
        layer list shows them visible for those ~0.15 s; ``warming`` says so)."""
        self.warming = True

        def done() -> None:
            self.warming = False

        draw_once_invisibly(
            [self._layer(tag) for tag in (IMAGE_TAG, POINTS_TAG, SELECTION_TAG)],
            lambda layer: self.shown and (layer is not self.calls_layer() or len(layer.data) > 0),
            self, done,
        )

    @property
    def well_viewer(self) -> WellViewer | None:
        if self._well_viewer is not None:
            return self._well_viewer
        return well_viewer_for(self.viewer)

    @property
    def size(self) -> int:
        return int(self.size_combo.currentData())

    # -- layers -----------------------------------------------------------------------------
    def _layer(self, tag: str) -> Any:
        for layer in self.viewer.layers:
            if (getattr(layer, "metadata", {}) or {}).get("deepnoise") == tag:
                return layer
        return None

    def image_layer(self) -> Any:
        return self._layer(IMAGE_TAG)

    def calls_layer(self) -> Any:
        return self._layer(POINTS_TAG)

    def set_shown(self, shown: bool) -> None:
        """Show the mosaic (hides the well's channel layers) or go back to the well view."""
        self.shown = bool(shown)
        if self.show_button.isChecked() != self.shown:
            self.show_button.blockSignals(True)
            self.show_button.setChecked(self.shown)
            self.show_button.blockSignals(False)
        self.show_button.setText("Back to well view" if shown else "Show plate mosaic")
        if self.well_viewer is not None:
            self.well_viewer.set_shown(not shown)
        for tag in (IMAGE_TAG, POINTS_TAG, SELECTION_TAG):
            layer = self._layer(tag)
            if tag == SELECTION_TAG and self.shown:
                continue  # _show's _update_selection moves it to the current well first
            visible = self.shown and (tag != POINTS_TAG or len(getattr(layer, "data", ())) > 0)
            if layer is not None and layer.visible != visible:
                layer.visible = visible
        if shown:
            self.load_plate(self.state.plate)
        elif self.well_viewer is not None:
            self.well_viewer.fit_view()
        else:
            fit_view(self.viewer)

    # -- building ---------------------------------------------------------------------------
    def _offer_sizes(self, screen: Screen | None) -> None:
        """Thumbnail sizes up to the screen's image size (no upsampled thumbnails)."""
        sizes, wanted = thumbnail_sizes(screen.image_size if screen is not None else None,
                                        self._preferred_size)
        self.size_combo.blockSignals(True)
        self.size_combo.clear()
        for size in sizes:
            self.size_combo.addItem(f"{size} px thumbnails", size)
        self.size_combo.setCurrentIndex(sizes.index(wanted))
        self.size_combo.blockSignals(False)

    def _screen_changed(self, screen: Screen | None) -> None:
        self._cancel_build()
        self._offer_sizes(screen)
        self.cache = (ThumbnailCache(screen, size=self.size, pixels=shared_pixels(screen))
                      if screen is not None else None)
        self.thumbs = None
        self._plate = None
        self._base_image = None
        self.status.setText(IDLE_STATUS)  # the last plate's line belonged to that screen
        calls = self.calls_layer()
        if calls is not None and len(calls.data):  # the old screen's calls
            calls.data = np.zeros((0, 2))
            calls.visible = False
            sliced_while_hidden(calls)

    def _size_chosen(self) -> None:
        self._preferred_size = self.size  # kept for the next screens (when they allow it)
        self._size_changed()

    def _size_changed(self) -> None:
        if self.state.screen is not None:
            pixels = self.cache.pixels if self.cache is not None else None
            self.cache = ThumbnailCache(self.state.screen, size=self.size, pixels=pixels)
        self.thumbs = None
        if self.shown:
            self.load_plate(self.state.plate)

    def _plate_changed(self, plate: Plate | None) -> None:
        if self.shown:
            self.load_plate(plate)

    def _cancel_build(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        self._cancel = None

    def load_plate(self, plate: Plate | None, *, block: bool = False) -> None:
        """Show ``plate``'s mosaic: thumbnails from the cache or built, tiled in a thread.

        Everything but handing the finished image to napari runs in a worker, so the event
        loop only pays for the texture upload and the frame.
        """
        self._cancel_build()
        if plate is None or self.cache is None:
            return
        started = time.perf_counter()
        cache = self.cache
        cancel = threading.Event()
        self._cancel = cancel
        if block:
            thumbs = cache.get(plate) or cache.build(plate, cancel=cancel)
            if thumbs is not None:
                self._show(plate, thumbs, mosaic_image(plate, thumbs), started)
            return
        from superqt.utils import create_worker

        def work():  # generator worker: yields (done, total), returns (thumbnails, image)
            thumbs = cache.get(plate)
            if thumbs is None:
                yield (0, len(plate.wells))  # building (a long build shows a progress bar)
                thumbs = yield from run_with_progress(
                    lambda report: cache.build(plate, cancel=cancel,
                                               progress=lambda d, t: report((d, t))))
            if thumbs is None or cancel.is_set():
                return None
            return thumbs, mosaic_image(plate, thumbs)

        def progressed(step: tuple[int, int]) -> None:
            if time.perf_counter() - started < PROGRESS_AFTER_S:
                return  # a short build shows no bar (one repaint less while opening)
            if self.status_stack.currentWidget() is not self.progress:
                self.progress.setRange(0, len(plate.wells))
                self.status.setText(f"Building thumbnails of {plate.key} ...")
                self.status_stack.setCurrentWidget(self.progress)
            self.progress.setValue(step[0])

        worker = create_worker(work, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(progressed)

        def done(result: tuple[PlateThumbnails, np.ndarray] | None) -> None:
            if self.status_stack.currentWidget() is not self.status:
                self.status_stack.setCurrentWidget(self.status)
            if result is None or cancel.is_set() or self.state.plate is not plate:
                return
            self._show(plate, *result, started)

        worker.returned.connect(done)
        worker.errored.connect(lambda exc: self.status.setText(f"Thumbnails failed: {exc}"))
        self._worker = worker
        worker.start()

    def _show(self, plate: Plate, thumbs: PlateThumbnails, image: np.ndarray,
              started: float) -> None:
        self._plate = plate
        self.thumbs = thumbs
        self._base_image = image
        self._put_image(shade_label_boxes(image, plate, self._called_wells(), thumbs.size))
        self._update_calls(push_image=False)
        self._update_selection()
        if self.shown:
            fit_view(self.viewer, [self.image_layer()])
            show_text(self.viewer, mosaic_caption(plate, len(thumbs.wells)))
        self.last_build_s = time.perf_counter() - started
        self.status.setText(mosaic_status(plate, len(thumbs.wells), len(thumbs.missing),
                                          self.last_build_s))
        self.mosaic_ready.emit(plate.key)

    def _put_image(self, image: np.ndarray) -> None:
        layer = self.image_layer()
        if layer is None:
            self.viewer.add_image(
                image, name="plate mosaic", rgb=True, visible=self.shown,
                metadata={"deepnoise": IMAGE_TAG},
            )
        elif (layer.data.shape == image.shape and isinstance(layer.data, np.ndarray)
              and layer.data.flags.writeable):
            np.copyto(layer.data, image)  # cheaper than the .data setter (no dims update)
            layer.refresh(extent=False, highlight=False)
        else:
            layer.data = image

    def _called_wells(self) -> list[str]:
        """The wells of the shown plate with a call (their labels sit on a dark band)."""
        if self._plate is None:
            return []
        calls = self.state.plate_calls(self._plate)
        return [name for name, pred in calls.items() if pred.get("sirna") is not None]

    def _update_calls(self, *, push_image: bool = True) -> None:
        plate = self._plate
        if plate is None or self.thumbs is None:
            return
        if push_image and self._base_image is not None:  # the label bands follow the calls
            self._put_image(shade_label_boxes(self._base_image, plate, self._called_wells(),
                                              self.thumbs.size))
        coords, features = call_features(plate, self.state, self.thumbs.size, self.thumbs)
        layer = self.calls_layer()
        size = max(4.0, self.thumbs.size * 0.22)
        if layer is not None:
            # update in place: removing and re-adding a layer costs napari a gc pass (~1 s);
            # the defaults first: napari fills the new points' features from them
            layer.feature_defaults = CALL_DEFAULTS
            layer.data = coords
            layer.features = features
            if len(coords) and not np.allclose(layer.size, size):
                layer.size = size
            if layer.metadata.get("tile") != self.thumbs.size:
                layer.text.translation = label_translation(self.thumbs.size)
                layer.metadata["tile"] = self.thumbs.size
            visible = self.shown and len(coords) > 0
            if layer.visible != visible:  # napari refreshes even when unchanged
                layer.visible = visible
            sliced_while_hidden(layer)
            return
        if len(coords) == 0:
            return
        self._add_calls_layer(coords, features, self.thumbs.size, visible=self.shown)

    def _add_calls_layer(self, coords: np.ndarray, features: pd.DataFrame, tile: int, *,
                         visible: bool = False) -> None:
        self.viewer.add_points(
            coords,
            features=features,
            # what points get before their features arrive (data and features are set
            # one after the other): a white label, which the features then replace
            feature_defaults=CALL_DEFAULTS,
            name="mosaic calls",
            symbol="square",
            size=max(4.0, tile * 0.22),
            face_color="confidence",
            face_colormap=confidence_colormap(),
            face_contrast_limits=(0.0, 1.0),
            border_width=0.12,  # relative: a light frame keeps dark (low) markers visible
            border_color="lightgrey",
            text={
                "string": "{sirna}",
                "anchor": "upper_left",
                "translation": label_translation(tile),
                "size": 8,
                "color": {"feature": "text_colour"},
            },
            visible=visible,
            metadata={"deepnoise": POINTS_TAG, "tile": tile},
        )

    def _well_changed(self, _well: Well | None) -> None:
        self._update_selection()

    def _update_selection(self) -> None:
        if self.thumbs is None or self._plate is None:
            return
        well = self.state.well
        layer = self._layer(SELECTION_TAG)
        if well is None or self.state.plate is not self._plate:
            if layer is not None:
                layer.visible = False
            return
        t = self.thumbs.size
        y, x = tile_origin(well.row, well.column, t)
        # one square marker around tile (0, 0), moved onto the well by the layer's translate:
        # a translate is a transform update, whereas changing Shapes data re-triangulated
        # and rebuilt a shader program on every click (a frame of 100+ ms in software GL)
        centre = np.array([[t / 2, t / 2]], dtype=float)
        if layer is None:
            self._add_selection_layer(t, (y, x), visible=self.shown)
        elif not self.shown:
            return  # hidden behind the well view: _show updates it when the mosaic returns
        else:
            if layer.metadata.get("tile") != t:  # another thumbnail size
                layer.data = centre
                layer.size = t + MOSAIC_GAP
                layer.metadata["tile"] = t
            if tuple(layer.translate) != (y, x):
                layer.translate = (y, x)
            if not layer.visible:
                layer.visible = True

    def _add_selection_layer(self, tile: int, translate: tuple[float, float], *,
                             visible: bool = False) -> None:
        self.viewer.add_points(
            np.array([[tile / 2, tile / 2]], dtype=float), symbol="square",
            size=tile + MOSAIC_GAP, face_color="transparent", border_color="white",
            border_width=SELECTION_BORDER, name="mosaic selection", visible=visible,
            translate=translate, metadata={"deepnoise": SELECTION_TAG, "tile": tile},
        )

    # -- mouse ------------------------------------------------------------------------------
    def well_at_world(self, position: tuple[float, ...]) -> str | None:
        """The well under a world position of the mosaic (None outside tiles)."""
        layer = self.image_layer()
        if layer is None or self._plate is None or self.thumbs is None:
            return None
        data = layer.world_to_data(position)
        y, x = float(data[-2]), float(data[-1])
        name = tile_at(y, x, self._plate, self.thumbs.size)
        return name if name in self._plate.wells else None

    def _on_mouse_press(self, _viewer: Any, event: Any) -> None:
        if not self.shown or event.type != "mouse_press":
            return
        name = self.well_at_world(event.position)
        if name is not None and self.state.plate is self._plate:
            self.state.select_well(name)

    def _on_double_click(self, _viewer: Any, event: Any) -> None:
        if not self.shown:
            return
        name = self.well_at_world(event.position)
        if name is not None:
            self.state.select_well(name)
            self.set_shown(False)
