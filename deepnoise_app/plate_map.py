"""Plate map dock: the plate drawn in its real format with QPainter, coloured by well type,
prediction confidence, right/wrong or "changed by balancing"; hover tooltips; click and arrow
keys select a well; optionally all plates of the experiment side by side.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QPointF, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QBrush, QColor, QFont, QFontMetrics, QLinearGradient, QPainter, QPen
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.models import colours
from deepnoise_app.models.captions import (
    fitting_plate_name,
    plate_map_title,
    plate_map_title_tooltip,
    well_problems,
    well_tooltip,
)
from deepnoise_app.models.plate_grid import PlatePlacement, next_well, place_plates
from deepnoise_app.models.predictions import split_plate_key
from deepnoise_app.models.state import AppState
from deepnoise_app.models.well_colours import (
    COLOUR_MODES,
    NO_DATA_RGB,
    RGB,
    legend_items,
    well_colours,
    well_is_missing,
)
from deepnoise_engine.screen.model import Plate, Well

TITLE_H = 16.0  # a plate's title band when several plates are shown


def plate_title(plate: Plate, metrics: QFontMetrics, width: float) -> str:
    """The longest of 'HEPG2-03 plate 1', 'Plate 1', 'P1' that fits ``width`` pixels."""
    return fitting_plate_name(plate, lambda text: metrics.horizontalAdvance(text) <= width)


class PlateMapWidget(QWidget):
    """Draws one or several plates; emits ``well_clicked(plate_key, well_name)``."""

    well_clicked = Signal(str, str)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.plates: list[Plate] = []
        self.mode = "type"
        self._colours: dict[str, dict[str, RGB | None]] = {}
        self._painted_selection: tuple[str | None, str | None] = (None, None)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(420, 300)

    def minimumSizeHint(self) -> QSize:
        """Room for the title, the row / column labels, readable wells and the legend:
        8 rows of 9 px, 16 of 6 px or 32 of 3 px (the largest plate shown decides)."""
        rows = max((p.format.rows for p in self.plates), default=8)
        plate_h = max(72, min(rows * 6, 96))
        return QSize(240, int(self._title_h + 16 + plate_h + self._legend_h + 0.5))

    # -- data -------------------------------------------------------------------------------
    def set_plates(self, plates: list[Plate]) -> None:
        formats = {p.format.rows for p in self.plates}
        self.plates = list(plates)
        if formats != {p.format.rows for p in self.plates}:
            self.updateGeometry()  # the minimum height depends on the plate format
        self.refresh()

    def set_mode(self, mode: str) -> None:
        if mode not in COLOUR_MODES:
            raise ValueError(f"unknown colour mode {mode!r}")
        self.mode = mode
        self.updateGeometry()  # the legend's height (and so the minimum) depends on the mode
        self.refresh()

    def refresh(self) -> None:
        """Recompute colours (predictions or mode changed) and repaint."""
        self._colours = {p.key: well_colours(p, self.mode, self.state) for p in self.plates}
        self.update()

    def update_selection(self, well: Well | None) -> None:
        """Repaint only the old and the new selection's cells (a full repaint of a 384-well
        plate is ~20 ms plus the window's recomposition on a machine without a GPU)."""
        plate = self.state.plate
        key = plate.key if plate is not None else None
        new = (key, well.name if well is not None else None)
        old, self._painted_selection = self._painted_selection, new
        if old[0] != new[0]:  # another plate: its title (bold) changes too
            self.update()
            return
        for plate_key, name in (old, new):
            rect = self.well_rect(plate_key, name) if plate_key and name else None
            if rect is not None:
                pad = max(2.0, rect.width() * 0.18) + 3  # the frame's pen reaches outside
                self.update(rect.adjusted(-pad, -pad, pad, pad).toAlignedRect())

    # -- layout -----------------------------------------------------------------------------
    @property
    def _legend_row(self) -> float:
        """Height of the legend's first row (colour bar / swatches with their labels)."""
        return max(14.0, float(self.fontMetrics().height()))

    @property
    def _legend_h(self) -> float:
        """Legend band at the bottom, inside the widget: margin, first row, [gap, second
        row: the colour bar's caption or wrapped swatches], margin."""
        one_row = 4.0 + self._legend_row + 4.0
        if self.mode == "confidence" or self._legend_wraps():
            return one_row + 2.0 + max(self._legend_row, self.fontMetrics().height())
        return one_row

    def _swatch_widths(self) -> list[float]:
        metrics = self.fontMetrics()
        return [13.0 + metrics.horizontalAdvance(t) + 8 + 6 for t, _ in legend_items(self.mode)]

    def _legend_wraps(self) -> bool:
        """The swatches (or the 'no predictions' note) need a second row."""
        if self.mode != "type" and not self._has_predictions():
            return True
        return sum(self._swatch_widths()) > self.width() - 20.0

    def _has_predictions(self) -> bool:
        return any(self.state.plate_predictions(p) is not None for p in self.plates)

    @property
    def _title_h(self) -> float:
        """Plate titles only side by side: a single plate's name is in the dock's title."""
        return TITLE_H if len(self.plates) > 1 else 0.0

    def _layout(self) -> list[PlatePlacement]:
        """Plates in the grid (1 x n, 2 x 2, ..., n x 1) that gives the largest wells."""
        return place_plates(self.plates, float(self.width()),
                            float(self.height()) - self._legend_h, self._title_h)

    def hit(self, pos: QPointF) -> tuple[Plate, str] | None:
        """(plate, well name) under a widget position, or None."""
        for placement in self._layout():
            name = placement.well_at(pos.x(), pos.y())
            if name is not None:
                return placement.plate, name
        return None

    def well_rect(self, plate_key: str, well: str) -> QRectF | None:
        """The widget rectangle of a well (tests and clicks use it)."""
        for placement in self._layout():
            if placement.plate.key == plate_key:
                w = placement.plate.wells.get(well)
                return None if w is None else QRectF(*placement.cell_rect(w))
        return None

    # -- painting ---------------------------------------------------------------------------
    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        dirty = QRectF(event.rect())  # a selection change repaints two cells only
        painter.fillRect(dirty, QColor(38, 41, 48))
        if not self.plates:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No plate selected")
            painter.end()
            return
        selected_plate = self.state.plate.key if self.state.plate is not None else None
        selected_well = self.state.well.name if self.state.well is not None else None
        self._painted_selection = (selected_plate, selected_well)
        font = QFont(self.font())
        for g in self._layout():
            self._paint_plate(painter, g, font, selected_plate, selected_well, dirty)
        if dirty.bottom() >= self.height() - self._legend_h:
            self._paint_legend(painter)
        painter.end()

    def _paint_plate(
        self, painter: QPainter, g: PlatePlacement, font: QFont,
        selected_plate: str | None, selected_well: str | None, dirty: QRectF,
    ) -> None:
        selected = g.plate.key == selected_plate
        if self._title_h > 0:
            self._paint_title(painter, g, font, selected)
        if g.cell >= 9:  # row letters / column numbers only when they fit
            self._paint_axis_labels(painter, g, font)
        self._paint_wells(painter, g, dirty)
        if selected and selected_well in g.plate.wells:  # the selection on top
            rect = QRectF(*g.cell_rect(g.plate.wells[selected_well]))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(0, 0, 0), max(2.0, g.cell * 0.18) + 2))
            painter.drawRect(rect)
            painter.setPen(QPen(QColor(*colours.SELECTION_RGB), max(2.0, g.cell * 0.18)))
            painter.drawRect(rect)

    def _paint_title(self, painter: QPainter, g: PlatePlacement, font: QFont,
                     selected: bool) -> None:
        """The plate's name above it (bold when it holds the selection)."""
        title_font = QFont(font)
        title_font.setBold(selected)
        title_font.setPointSizeF(max(7.0, font.pointSizeF()))
        painter.setFont(title_font)
        painter.setPen(QColor(235, 235, 235) if selected else QColor(160, 160, 160))
        rect = QRectF(g.x - 14, g.y - 16 - self._title_h,
                      g.cell * g.plate.format.columns + 14, self._title_h)
        painter.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         plate_title(g.plate, painter.fontMetrics(), rect.width()))

    def _paint_axis_labels(self, painter: QPainter, g: PlatePlacement, font: QFont) -> None:
        """Row letters on the left, column numbers on top (every other one when small)."""
        small = QFont(font)
        small.setPointSizeF(max(5.0, min(8.0, g.cell * 0.55)))
        painter.setFont(small)
        painter.setPen(QColor(150, 150, 150))
        fmt, cell = g.plate.format, g.cell
        for r in range(fmt.rows):
            painter.drawText(QRectF(g.x - 14, g.y + r * cell, 13, cell),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             fmt.well_name(r, 0)[:-2])
        step = 1 if cell >= 14 else 2
        for c in range(0, fmt.columns, step):
            painter.drawText(QRectF(g.x + c * cell, g.y - 14, cell, 13),
                             Qt.AlignmentFlag.AlignCenter, str(c + 1))

    def _paint_wells(self, painter: QPainter, g: PlatePlacement, dirty: QRectF) -> None:
        """The cells the dirty rectangle touches (one cell +- its frame on a selection)."""
        plate, cell, fmt = g.plate, g.cell, g.plate.format
        r0 = max(0, int((dirty.top() - g.y) // cell) - 1)
        r1 = min(fmt.rows, int((dirty.bottom() - g.y) // cell) + 2)
        c0 = max(0, int((dirty.left() - g.x) // cell) - 1)
        c1 = min(fmt.columns, int((dirty.right() - g.x) // cell) + 2)
        fills = self._colours.get(plate.key, {})
        pad = max(0.5, cell * 0.08)
        hatch = QBrush(QColor(20, 20, 20, 170), Qt.BrushStyle.BDiagPattern)
        for r in range(r0, r1):
            for c in range(c0, c1):
                name = fmt.well_name(r, c)
                rect = QRectF(g.x + c * cell + pad, g.y + r * cell + pad,
                              cell - 2 * pad, cell - 2 * pad)
                well = plate.wells.get(name)
                if well is None:  # unused position: a faint empty circle
                    painter.setPen(QPen(QColor(75, 78, 86), 1))
                    painter.setBrush(Qt.BrushStyle.NoBrush)
                    painter.drawEllipse(rect.adjusted(pad, pad, -pad, -pad))
                    continue
                missing = well_is_missing(well)
                rgb = colours.PROBLEM_RGB if missing else fills.get(name)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(*rgb if rgb is not None else NO_DATA_RGB))
                painter.drawRoundedRect(rect, cell * 0.15, cell * 0.15)
                if missing or well_problems(well):
                    painter.setBrush(hatch)
                    painter.drawRoundedRect(rect, cell * 0.15, cell * 0.15)

    def _paint_legend(self, painter: QPainter) -> None:
        top = self.height() - self._legend_h + 4  # the band ends 4 px above the bottom
        left = 10.0
        width = self.width() - 20.0
        painter.setFont(QFont(self.font()))
        if self.mode != "type" and not self._has_predictions():
            painter.setPen(QColor(220, 190, 120))
            painter.drawText(QRectF(left, top, width, self._legend_h - 8),
                             Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
                             "No predictions for this plate: score it in the workflow dock.")
            return
        if self.mode == "confidence":
            row = self._legend_row
            bar = QRectF(left + 26, top + (row - 10) / 2, max(40.0, width - 60), 10)
            gradient = QLinearGradient(bar.topLeft(), bar.topRight())
            for i in range(11):
                gradient.setColorAt(i / 10, QColor(*(int(v) for v in
                                                     colours.confidence_rgb(i / 10))))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(gradient))
            painter.drawRect(bar)
            painter.setPen(QColor(200, 200, 200))
            line = float(painter.fontMetrics().height())
            middle = Qt.AlignmentFlag.AlignVCenter
            painter.drawText(QRectF(left, top, 22, row), Qt.AlignmentFlag.AlignRight | middle,
                             "0")
            painter.drawText(QRectF(bar.right() + 4, top, 30, row),
                             Qt.AlignmentFlag.AlignLeft | middle, "1")
            # the caption's row ends 4 px above the widget's bottom (see _legend_h)
            painter.drawText(QRectF(left, top + row + 2, width, line),
                             Qt.AlignmentFlag.AlignCenter,
                             f"confidence of the {self.state.prediction_mode} call")
            return
        items = legend_items(self.mode)
        # swatches in up to two rows (the band's second row is free without a colour bar)
        row = self._legend_row
        x, y = left, top
        for text, rgb in items:
            w = painter.fontMetrics().horizontalAdvance(text) + 8
            if x > left and x + 13 + w > left + width and y == top:
                x, y = left, top + row + 2
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(*rgb))
            painter.drawRect(QRectF(x, y + (row - 10) / 2, 10, 10))
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(QRectF(x + 13, y, w, row),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
            x += 13 + w + 6

    # -- interaction ------------------------------------------------------------------------
    def event(self, event: object) -> bool:
        from qtpy.QtCore import QEvent

        if getattr(event, "type", lambda: None)() == QEvent.Type.ToolTip:
            hit = self.hit(QPointF(event.pos()))
            if hit is None:
                QToolTip.hideText()
            else:
                plate, name = hit
                text = well_tooltip(plate, plate.wells.get(name), name,
                                    self.state.well_prediction(name, plate),
                                    self.state.prediction_mode)
                QToolTip.showText(event.globalPos(), text, self)
            return True
        return super().event(event)

    def mousePressEvent(self, event: object) -> None:
        self.setFocus()
        hit = self.hit(QPointF(event.position()))
        if hit is not None and hit[1] in hit[0].wells:
            self.well_clicked.emit(hit[0].key, hit[1])

    def keyPressEvent(self, event: object) -> None:
        moves = {
            Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1),
            Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0),
        }
        step = moves.get(event.key())
        plate = self.state.plate
        if step is None or plate is None:
            super().keyPressEvent(event)
            return
        target = next_well(plate, self.state.well, step)
        if target is not None:
            self.well_clicked.emit(plate.key, target)
        event.accept()


class PlateMapDock(QWidget):
    """Plate map with its controls: colour mode, raw/balanced, experiment side by side."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._mode_picked_by_user = False
        self.setObjectName("deepnoise-plate-map")
        self.map = PlateMapWidget(state, self)
        self.mode_combo = QComboBox()
        for key, label in COLOUR_MODES.items():
            self.mode_combo.addItem(label, key)
        self.prediction_combo = QComboBox()
        self.prediction_combo.addItem("Balanced calls", "balanced")
        self.prediction_combo.addItem("Raw calls (argmax)", "raw")
        self.side_by_side = QCheckBox("All plates of the experiment")
        self.title = QLabel("No plate")
        self.title.setWordWrap(True)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Colour:"))
        controls.addWidget(self.mode_combo, 1)
        controls.addWidget(self.prediction_combo, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(controls)
        layout.addWidget(self.side_by_side)
        layout.addWidget(self.map, 1)

        self.mode_combo.currentIndexChanged.connect(self._mode_chosen)
        self.prediction_combo.currentIndexChanged.connect(self._prediction_mode_chosen)
        self.side_by_side.toggled.connect(lambda _on: self._plate_changed(self.state.plate))
        self.map.well_clicked.connect(self._well_clicked)
        state.plate_changed.connect(self._plate_changed)
        state.well_changed.connect(self._well_changed)
        state.predictions_changed.connect(self._predictions_changed)
        state.prediction_mode_changed.connect(self._prediction_mode_changed)
        state.screen_changed.connect(lambda _s: self._plate_changed(None))
        self._prediction_mode_changed(state.prediction_mode)
        self._plate_changed(state.plate)

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex(list(COLOUR_MODES).index(mode))
        self._mode_picked_by_user = True

    def _mode_chosen(self, _index: int) -> None:
        self._mode_picked_by_user = True
        self.map.set_mode(self.mode_combo.currentData())

    def _predictions_changed(self, *_: object) -> None:
        # the first predictions are what the user waited for: show them, unless the user
        # already chose a colour mode
        if self.state.predictions and not self._mode_picked_by_user:
            self.mode_combo.blockSignals(True)
            self.mode_combo.setCurrentIndex(list(COLOUR_MODES).index("confidence"))
            self.mode_combo.blockSignals(False)
            self.map.set_mode("confidence")
            return
        self.map.refresh()

    def _prediction_mode_chosen(self, _index: int) -> None:
        self.state.set_prediction_mode(self.prediction_combo.currentData())

    def _prediction_mode_changed(self, mode: str) -> None:
        index = self.prediction_combo.findData(mode)
        if index >= 0 and index != self.prediction_combo.currentIndex():
            self.prediction_combo.blockSignals(True)
            self.prediction_combo.setCurrentIndex(index)
            self.prediction_combo.blockSignals(False)
        self.map.refresh()

    def _plate_changed(self, plate: Plate | None) -> None:
        if plate is None:
            self.map.set_plates([])
            self.title.setText("No plate selected")
            return
        if self.side_by_side.isChecked() and self.state.screen is not None:
            exp = self.state.screen.experiments[plate.experiment]
            plates = [exp.plates[i] for i in sorted(exp.plates)]
        else:
            plates = [plate]
        self.map.set_plates(plates)
        # one line at the default dock width (the map gets the height); details in the tooltip
        self.title.setText(plate_map_title(plate))
        self.title.setToolTip(plate_map_title_tooltip(plate))

    def _well_changed(self, well: Well | None) -> None:
        self.map.update_selection(well)

    def _well_clicked(self, plate_key: str, well: str) -> None:
        if self.state.plate is None or self.state.plate.key != plate_key:
            self.state.select_plate(*split_plate_key(plate_key))
        self.state.select_well(well)
