"""The QC dock: a 2-D map of the well embeddings (pyqtgraph) and the QC table.

Hover names a well; a click selects it (the plate map and the well viewer follow the
AppState); the lasso lists the wells it holds (click one to select it). The data logic
lives in ``qc_map`` (Qt-free); the map is drawn by pyqtgraph's ScatterPlotItem, which pans
and zooms 20,000 points without stalls.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QSize, Qt, QTimer, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.models.qc_map import (
    COLOUR_BY,
    PALETTE,
    MapPoints,
    describe,
    load_points,
    nearest_point,
    point_colours,
    points_in_polygon,
    qc_table,
    qc_table_cells,
    umap_available,
)
from deepnoise_app.models.state import AppState

log = logging.getLogger(__name__)

#: at most this many colours are drawn; more categories (siRNAs) cycle through PALETTE
MAX_LAYERS = 24


class LassoViewBox(pg.ViewBox):
    """A ViewBox whose left-button drag draws a lasso while ``lasso`` is on."""

    lasso_finished = Signal(object)  # (M, 2) polygon in data coordinates

    def __init__(self) -> None:
        super().__init__()
        self.lasso = False
        self._path: list[tuple[float, float]] = []
        self.outline = pg.PlotCurveItem(pen=pg.mkPen((30, 30, 30), width=1.5,
                                                     style=Qt.PenStyle.DashLine))
        self.outline.setZValue(10)
        self.addItem(self.outline, ignoreBounds=True)

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:
        if not self.lasso or ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        point = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            self._path = []
        self._path.append((point.x(), point.y()))
        closed = [*self._path, self._path[0]]
        self.outline.setData([p[0] for p in closed], [p[1] for p in closed])
        if ev.isFinish():
            self.lasso_finished.emit(np.asarray(self._path, np.float64))


class QCDock(QWidget):
    """Map of the wells of the loaded score folder, coloured by a choice, and QC table."""

    def __init__(self, state: AppState, bridge: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("deepnoise-qc")
        self.state = state
        self.bridge = bridge
        self.points: MapPoints | None = None
        self.lasso_rows = np.zeros(0, int)
        self._qc_request: str | None = None
        self._loaded_dir: Path | None = None
        self._stale = True
        self._generation = 0
        self._workers: set[Any] = set()
        self.loading = False
        self._build()
        state.predictions_changed.connect(self._schedule_reload)
        state.well_changed.connect(self._show_selected)
        if bridge is not None:
            bridge.finished.connect(self._job_finished)
        self._schedule_reload()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        """The choices row, the message, and the map beside the QC table and lasso list."""
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_map())
        split.addWidget(self._build_side())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.message = QLabel("Score a screen to see its wells here.")
        self.message.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_choices())
        layout.addWidget(self.message)
        layout.addWidget(split, 1)

    def _build_choices(self) -> QHBoxLayout:
        """Colour by, map layout, lasso."""
        self.colour_by = QComboBox()
        self.colour_by.addItems(COLOUR_BY)
        self.colour_by.currentTextChanged.connect(self.recolour)
        self.layout_choice = QComboBox()
        self.layout_choice.addItems(["PCA", "UMAP"] if umap_available() else ["PCA"])
        self.layout_choice.currentTextChanged.connect(lambda _t: self.reload())
        self.lasso_button = QPushButton("Lasso")
        self.lasso_button.setCheckable(True)
        self.lasso_button.setToolTip("Drag around wells to list them (pan/zoom while off)")
        self.lasso_button.toggled.connect(self._lasso_toggled)
        top = QHBoxLayout()
        for text, widget in (("Colour", self.colour_by), ("Map", self.layout_choice)):
            top.addWidget(QLabel(text))
            top.addWidget(widget)
        top.addWidget(self.lasso_button)
        top.addStretch(1)
        return top

    def _build_map(self) -> QWidget:
        """The pyqtgraph map with its legend and hover line."""
        self.view = LassoViewBox()
        self.view.lasso_finished.connect(self._lasso_done)
        self.plot = pg.PlotWidget(viewBox=self.view, background="w")
        self.plot.setObjectName("deepnoise-qc-map")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMinimumHeight(120)
        # one ScatterPlotItem per colour: a uniform brush keeps pyqtgraph vectorised
        # (per-point brushes cost a Python loop over 20,000 points at every recolour)
        self.layers: list[pg.ScatterPlotItem] = []
        self.layer_rows: list[np.ndarray] = []
        self.selected = pg.ScatterPlotItem(size=16, pen=pg.mkPen("k", width=2), brush=None,
                                           pxMode=True)
        self.selected.setZValue(5)  # above the colour layers
        self.plot.addItem(self.selected)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.hover_label = QLabel("")
        self.hover_label.setObjectName("deepnoise-qc-hover")
        # a fixed height: a new hover text must not re-layout the dock (and repaint the map)
        self.hover_label.setFixedHeight(self.hover_label.fontMetrics().height() + 4)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.plot, 1)
        left_layout.addWidget(self.legend)
        left_layout.addWidget(self.hover_label)
        return left

    def _build_side(self) -> QWidget:
        """The QC table with Run QC, and the list of the wells in the lasso."""
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("deepnoise-qc-table")
        self.table.setHorizontalHeaderLabels(
            ["profile", "siRNA mAP ↑", "experiment mAP ↓", "plate mAP ↓", "mixing ↑"])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setToolTip("mAP (chance) per profile; docs/qc.md explains the columns")
        self.table.setMinimumHeight(80)
        self.table.verticalHeader().setVisible(False)
        self.run_qc = QPushButton("Run QC")
        self.run_qc.clicked.connect(self.request_qc)
        self.lasso_list = QListWidget()
        self.lasso_list.setObjectName("deepnoise-qc-lasso")
        self.lasso_list.setMinimumHeight(40)
        self.lasso_list.itemClicked.connect(
            lambda item: self.select_row(int(item.data(Qt.ItemDataRole.UserRole))))
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(QLabel("Noise-removal QC"))
        side_layout.addWidget(self.table, 2)
        side_layout.addWidget(self.run_qc)
        side_layout.addWidget(QLabel("Wells in the lasso"))
        side_layout.addWidget(self.lasso_list, 1)
        return side

    def sizeHint(self) -> QSize:
        """Tall enough for the map and the table when the bottom dock first opens."""
        return QSize(900, 380)

    # -- data ---------------------------------------------------------------------------------
    def _schedule_reload(self, *_args: Any) -> None:
        QTimer.singleShot(0, self, self.reload)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._stale:
            self._schedule_reload()

    def reload(self, force: bool = False) -> None:
        """Read the loaded score folder's embeddings and the QC table; the reading and the
        layout run in a worker thread (20,000 x 1,024 floats: ~1 s) and only while the dock
        is shown (a hidden dock reloads when it is shown)."""
        score_dir = self.state.score_dir
        if not self.isVisible() and not force:
            self._stale = True
            return
        self._stale = False
        if score_dir is None or not self.state.predictions:
            self.set_points(None)
            self.message.setText("Score a screen (or load scores) to see its wells here.")
            return
        self.show_table()
        from superqt.utils import create_worker

        self.message.setText(f"reading the well embeddings of {score_dir} ...")
        worker = create_worker(load_points, score_dir, dict(self.state.predictions),
                               self.layout_choice.currentText(), _start_thread=False,
                               _ignore_errors=True)
        generation = self._generation = self._generation + 1
        worker.returned.connect(lambda points: self._loaded(generation, score_dir, points))
        worker.errored.connect(lambda exc: self._failed(generation, exc))
        worker.finished.connect(lambda: self._workers.discard(worker))
        self._workers.add(worker)
        self.loading = True
        worker.start()

    def _loaded(self, generation: int, score_dir: Path, points: MapPoints) -> None:
        if generation != self._generation:  # a newer reload is on its way
            return
        self.loading = False
        self._loaded_dir = Path(score_dir)
        self.set_points(points)
        self.message.setText(f"{len(points)} wells of {score_dir} "
                             f"({points.layout} of the ensemble's embedding)")

    def _failed(self, generation: int, exc: Exception) -> None:
        if generation != self._generation:
            return
        self.loading = False
        self.set_points(None)
        self.message.setText(str(exc))

    def set_points(self, points: MapPoints | None) -> None:
        """Show ``points`` (None clears the map)."""
        self.points = points
        self.lasso_rows = np.zeros(0, int)
        self.lasso_list.clear()
        if points is None:
            self._set_layers([], [])
            self.selected.clear()
            return
        self.recolour()
        self._show_selected()
        self.plot.autoRange()

    def recolour(self, *_args: Any) -> None:
        """Colour the points by the chosen property and update the legend."""
        if self.points is None:
            return
        codes, palette = point_colours(self.points, self.colour_by.currentText())
        drawn = palette if len(palette) <= MAX_LAYERS else [
            (label, PALETTE[i % len(PALETTE)]) for i, (label, _) in enumerate(palette)]
        colours = sorted({rgb for _, rgb in drawn})
        layer_of = np.array([colours.index(rgb) for _, rgb in drawn], int)[codes]
        order = np.argsort(layer_of, kind="stable")
        bounds = np.searchsorted(layer_of[order], np.arange(len(colours) + 1))
        self._set_layers(colours, [order[bounds[i]:bounds[i + 1]]
                                   for i in range(len(colours))])
        palette = drawn
        shown = palette if len(palette) <= 24 else palette[:0]
        swatches = " ".join(f'<span style="color: rgb{rgb}">●</span>&nbsp;{label}'
                            for label, rgb in shown)
        self.legend.setText(swatches or f"{len(palette)} values (hover to read)")

    def _set_layers(self, colours: list[tuple], rows: list[np.ndarray]) -> None:
        """One scatter item per colour holding ``rows`` of the points (items are reused)."""
        while len(self.layers) < len(colours):
            item = pg.ScatterPlotItem(size=6, pen=None, pxMode=True, useCache=True)
            self.plot.addItem(item)
            self.layers.append(item)
        for i, item in enumerate(self.layers):
            if i < len(colours) and len(rows[i]) and self.points is not None:
                item.setData(pos=self.points.xy[rows[i]], size=6, pen=None,
                             brush=QBrush(QColor(*colours[i])))
                item.setVisible(True)
            else:
                item.clear()
                item.setVisible(False)
        self.layer_rows = [rows[i] if i < len(rows) else np.zeros(0, int)
                           for i in range(len(self.layers))]

    def drawn_colours(self) -> np.ndarray:
        """(N, 3) RGB of every point as the scatter items draw it (tests, benchmarks)."""
        out = np.zeros((0 if self.points is None else len(self.points), 3), int)
        for item, rows in zip(self.layers, self.layer_rows, strict=True):
            if len(rows):
                out[rows] = item.opts["brush"].color().getRgb()[:3]
        return out

    def show_table(self) -> None:
        """Fill the QC table from ``qc/qc.json`` of the score folder (or say how to get it)."""
        rows = None
        if self.state.score_dir is not None:
            try:
                rows = qc_table(self.state.score_dir)
            except ValueError as exc:
                self.message.setText(str(exc))
        self.table.setRowCount(0 if rows is None else len(rows))
        self.run_qc.setText("Run QC" if rows is None else "Run QC again")
        self.run_qc.setEnabled(self.bridge is not None and self.state.score_dir is not None)
        for r, row in enumerate(rows or []):
            for c, text in enumerate(qc_table_cells(row)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def request_qc(self) -> str | None:
        """Ask the engine to run ``qc`` on the loaded score folder (table reloads after)."""
        if self.bridge is None or self.state.score_dir is None:
            return None
        self._qc_request = self.bridge.submit("qc", score_dir=str(self.state.score_dir),
                                              overwrite=True)
        self.run_qc.setEnabled(False)
        self.run_qc.setText("QC running…")
        return self._qc_request

    def _job_finished(self, event: dict) -> None:
        if self._qc_request is not None and event.get("request") == self._qc_request:
            self._qc_request = None
            self.show_table()

    # -- interaction --------------------------------------------------------------------------
    def _pixel(self) -> tuple[float, float]:
        size = self.view.viewPixelSize()
        return float(size[0]), float(size[1])

    def point_at(self, scene_pos: Any) -> int | None:
        """The point under a scene position (within 6 px), or None."""
        if self.points is None:
            return None
        p = self.view.mapSceneToView(scene_pos)
        return nearest_point(self.points.xy, p.x(), p.y(), self._pixel())

    def _hover(self, scene_pos: Any) -> None:
        i = self.point_at(scene_pos)
        text = "" if i is None else describe(self.points, i)
        if text != self.hover_label.text():
            self.hover_label.setText(text)

    def _clicked(self, ev: Any) -> None:
        if self.view.lasso or ev.button() != Qt.MouseButton.LeftButton:
            return
        i = self.point_at(ev.scenePos())
        if i is not None:
            self.select_row(i)

    def select_row(self, i: int) -> None:
        """Select point ``i``'s well in the AppState (plate map and images follow)."""
        if self.points is None or self.state.screen is None:
            return
        row = self.points.frame.iloc[int(i)]
        try:
            self.state.go_to_well(row["experiment"], int(row["plate"]), row["well"])
        except (KeyError, RuntimeError) as exc:  # a score folder of another screen
            self.message.setText(f"cannot select {row['id_code']}: {exc}")

    def _show_selected(self, *_args: Any) -> None:
        well, plate = self.state.well, self.state.plate
        if self.points is None or well is None or plate is None:
            self.selected.clear()
            return
        hit = np.flatnonzero(self.points.frame["id_code"].to_numpy() == well.id_code)
        if len(hit):
            self.selected.setData(pos=self.points.xy[hit])
        else:
            self.selected.clear()

    def _lasso_toggled(self, on: bool) -> None:
        self.view.lasso = on
        self.view.setMouseEnabled(x=not on, y=not on)
        if not on:
            self.view.outline.setData([], [])

    def _lasso_done(self, polygon: np.ndarray) -> None:
        self.select_lasso(polygon)

    def select_lasso(self, polygon: np.ndarray) -> np.ndarray:
        """List the wells inside ``polygon`` (data coordinates); returns their rows."""
        self.lasso_list.clear()
        if self.points is None:
            return np.zeros(0, int)
        self.lasso_rows = points_in_polygon(self.points.xy, polygon)
        frame = self.points.frame
        for i in self.lasso_rows[:5000]:
            self.lasso_list.addItem(describe(self.points, int(i)))
            self.lasso_list.item(self.lasso_list.count() - 1).setData(
                Qt.ItemDataRole.UserRole, int(i))
        self.message.setText(f"{len(self.lasso_rows)} wells in the lasso "
                             f"({frame.iloc[self.lasso_rows]['experiment'].nunique()} "
                             "experiments)" if len(self.lasso_rows) else "no well in the lasso")
        return self.lasso_rows


class QCWidget(QCDock):
    """The QC dock for napari's Plugins menu."""

    def __init__(self, napari_viewer: Any) -> None:
        from deepnoise_app.state import state_for

        super().__init__(state_for(napari_viewer))
