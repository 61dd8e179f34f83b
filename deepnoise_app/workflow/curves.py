"""Training curves like the paper's Fig. 5, drawn with pyqtgraph.

Two plots (side by side, or stacked in a tall narrow dock): losses (train, validation) and
validation accuracy (students and teachers, raw and plate-balanced, plus the ensemble when
present). Points come from the training's metrics records (one per epoch;
``metrics.jsonl`` keys), live or read from a finished run. The mouse wheel zooms, a drag
pans, the "A" button or a double click fits again; hovering reads the nearest point; the
right-click menu and ``save_image`` save the curves as an image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QPointF, QSize, Qt
from qtpy.QtWidgets import QBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget


@dataclass(frozen=True)
class Series:
    key: str  # metrics record key
    label: str
    colour: str
    dashed: bool = False


LOSS_SERIES = (
    Series("train_loss", "train loss", "#1f77b4"),
    Series("val_loss", "validation loss", "#d62728"),
)
ACC_SERIES = (
    Series("val_acc_student_raw", "student raw", "#1f77b4", dashed=True),
    Series("val_acc_student_balanced", "student balanced", "#1f77b4"),
    Series("val_acc_teacher_raw", "teacher raw", "#ff7f0e", dashed=True),
    Series("val_acc_teacher_balanced", "teacher balanced", "#ff7f0e"),
    Series("val_acc_ensemble_raw", "ensemble raw", "#2ca02c", dashed=True),
    Series("val_acc_ensemble_balanced", "ensemble balanced", "#2ca02c"),
)


def legend_entries(present: list[Series]) -> list[tuple[str, str, bool]]:
    """(label, colour, dashed) legend entries for the drawn series.

    Accuracy series are named by role (colour) with one "raw" (dashed) and one "balanced"
    (solid) entry, as in the paper's Fig. 5: 5 short entries instead of 6 long ones, so
    the legend fits a narrow dock.
    """
    roles: dict[str, str] = {}
    styles: set[bool] = set()
    plain: list[tuple[str, str, bool]] = []
    for s in present:
        role, _, style = s.label.rpartition(" ")
        if s.key.startswith("val_acc_") and style in ("raw", "balanced") and role:
            roles.setdefault(role, s.colour)
            styles.add(s.dashed)
        else:
            plain.append((s.label, s.colour, s.dashed))
    entries = plain + [(role, colour, False) for role, colour in roles.items()]
    if True in styles:
        entries.append(("raw", "#555555", True))
    if False in styles:
        entries.append(("balanced", "#555555", False))
    return entries


def _number(value: object) -> float | None:
    """A finite float from a record value, else None (missing, null, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _pen(colour: str, dashed: bool, width: float = 2.0) -> pg.QtGui.QPen:
    pen = pg.mkPen(colour, width=width)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


class _Panel:
    """One pyqtgraph plot: its series' curves, a compact legend and the stage lines."""

    def __init__(self, title: str, series: tuple[Series, ...], y_label: str,
                 empty: str = "waiting for the first epoch") -> None:
        self.series = series
        # colours set per widget: pyqtgraph's global options are shared with other docks
        self.widget = pg.PlotWidget(background="w")
        self.widget.setMinimumSize(150, 80)
        self.plot: pg.PlotItem = self.widget.getPlotItem()
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setPen("#888888")
            self.plot.getAxis(axis).setTextPen("#333333")
        self.plot.setTitle(title, size="9pt", color="#222222")
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", y_label)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(True)  # right click: view options and Export…
        self.legend = self.plot.addLegend(offset=(4, 4), labelTextSize="8pt",
                                          labelTextColor="#222222", verSpacing=-6,
                                          brush=pg.mkBrush(255, 255, 255, 200))
        self.curves = {s.key: self.plot.plot([], [], pen=_pen(s.colour, s.dashed),
                                             symbol="o", symbolSize=4,
                                             symbolBrush=s.colour, symbolPen=None,
                                             antialias=True, name=None)
                       for s in series}
        self.stage_lines: list[pg.InfiniteLine] = []
        self.placeholder = pg.TextItem(empty, color="#999999", anchor=(0.5, 0.5))
        self.plot.addItem(self.placeholder, ignoreBounds=True)

    def update(self, points: dict[str, list[tuple[float, float]]],
               stages: list[tuple[float, str]], breaks: frozenset[float] = frozenset()) -> None:
        """Draw the series; no line runs into a point whose x is in ``breaks`` (the first
        epoch of another independent repeat)."""
        present = [s for s in self.series if points.get(s.key)]
        for s in self.series:
            pts = points.get(s.key) or []
            joined = np.array([b[0] not in breaks for b in pts[1:]] + [False], dtype=bool)
            self.curves[s.key].setData([p[0] for p in pts], [p[1] for p in pts],
                                       connect=joined if pts else "all")
        self.legend.clear()
        for label, colour, dashed in legend_entries(present):
            sample = pg.PlotDataItem([], [], pen=_pen(colour, dashed))
            self.legend.addItem(sample, label)
        self.placeholder.setVisible(not present)
        if not present:  # in the middle of the empty plot
            (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
            self.placeholder.setPos((x0 + x1) / 2, (y0 + y1) / 2)
        self._draw_stages(stages)

    def _draw_stages(self, stages: list[tuple[float, str]]) -> None:
        for line in self.stage_lines:
            self.plot.removeItem(line)
        self.stage_lines = []
        for i, (x, stage) in enumerate(stages[1:]):
            # labels step down the plot: stages close together do not overlap
            line = pg.InfiniteLine(
                pos=x - 0.5, angle=90, pen=pg.mkPen("#999999", style=Qt.PenStyle.DotLine),
                label=stage, labelOpts={"position": 0.92 - 0.12 * (i % 4), "color": "#666666",
                                        "anchors": [(0, 0), (0, 0)]})
            self.plot.addItem(line, ignoreBounds=True)
            self.stage_lines.append(line)


class CurvesWidget(QWidget):
    """Loss and accuracy curves per epoch; feed it metrics records with ``add_record``.

    The x value of a record is its position in the run (shared epochs, then the
    fine-tuning epochs per cell type), so stages follow each other left to right; stage
    changes are dotted vertical lines named by the stage.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._records: list[dict] = []
        self.loss = _Panel("Loss per epoch", LOSS_SERIES, "loss")
        self.accuracy = _Panel("Validation accuracy per epoch", ACC_SERIES, "accuracy",
                               empty="no validation accuracy (yet)")
        self.readout = QLabel("Hover a curve to read its values; the wheel zooms.")
        self.readout.setStyleSheet("color: #555555;")
        self.readout.setWordWrap(True)
        self._panels = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self._panels.setContentsMargins(0, 0, 0, 0)
        self._panels.addWidget(self.loss.widget)
        self._panels.addWidget(self.accuracy.widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._panels, 1)
        layout.addWidget(self.readout)
        self.setMinimumSize(300, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        for panel in (self.loss, self.accuracy):
            panel.widget.scene().sigMouseMoved.connect(
                lambda pos, panel=panel: self._hover(panel, pos))
        self._redraw()

    # -- data ------------------------------------------------------------------------
    def clear(self) -> None:
        self._records.clear()
        self._redraw()

    def set_records(self, records: list[dict]) -> None:
        self._records = [dict(r) for r in records]
        self._redraw()

    def add_record(self, record: dict) -> None:
        """Append one metrics record (an epoch); accepts ``{"record": {...}}`` events too."""
        if "record" in record and isinstance(record["record"], dict):
            record = record["record"]
        self._records.append(dict(record))
        self._redraw()

    @property
    def records(self) -> list[dict]:
        return list(self._records)

    def series(self, key: str) -> list[tuple[float, float]]:
        """(x, y) points of one metrics key (x = 1-based position of the record)."""
        points = []
        for i, record in enumerate(self._records, start=1):
            y = _number(record.get(key))
            if y is not None:
                points.append((float(i), y))
        return points

    def point_count(self) -> int:
        """Number of drawn points over all series."""
        return sum(len(self.series(s.key)) for s in (*LOSS_SERIES, *ACC_SERIES))

    def drawn_point_count(self) -> int:
        """Points the plots hold now (what the user sees)."""
        return sum(len(curve.xData if curve.xData is not None else ())
                   for panel in (self.loss, self.accuracy) for curve in panel.curves.values())

    def stage_starts(self) -> list[tuple[float, str]]:
        """(x, stage) where a new stage begins."""
        starts, last = [], None
        for i, record in enumerate(self._records, start=1):
            stage = str(record.get("stage", ""))
            repeat = record.get("repeat")
            if isinstance(repeat, int) and repeat > 1:  # model.repeats: a new training
                stage = f"repeat {repeat}: {stage}"
            if stage != last:
                starts.append((float(i), stage))
                last = stage
        return starts

    def repeat_starts(self) -> frozenset[float]:
        """x of each record that begins another independent repeat (``model.repeats``)."""
        return frozenset(float(i) for i in range(2, len(self._records) + 1)
                         if self._records[i - 1].get("repeat")
                         != self._records[i - 2].get("repeat"))

    def _redraw(self) -> None:
        stages = self.stage_starts()
        breaks = self.repeat_starts()
        for panel in (self.loss, self.accuracy):
            panel.update({s.key: self.series(s.key) for s in panel.series}, stages, breaks)
        ys = [y for s in ACC_SERIES for _, y in self.series(s.key)]
        top = 100.0 if ys and max(ys) > 1.0 else 1.0  # accuracy given in percent
        self.accuracy.plot.setYRange(0.0, top, padding=0.02)
        self.accuracy.plot.enableAutoRange(axis="x")
        self.loss.plot.enableAutoRange()
        for panel in (self.loss, self.accuracy):  # whole epochs while they are few
            axis = panel.plot.getAxis("bottom")
            if len(self._records) <= 12:
                axis.setTickSpacing(major=1, minor=1)
            else:
                axis.setTickSpacing()

    # -- reading and saving ----------------------------------------------------------
    def nearest(self, panel: _Panel, x: float, y: float) -> tuple[Series, float, float] | None:
        """The point of ``panel`` nearest to data position (x, y), in screen distance."""
        view = panel.plot.getViewBox()
        (x0, x1), (y0, y1) = view.viewRange()
        sx, sy = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
        best, best_d = None, math.inf
        for s in panel.series:
            for px, py in self.series(s.key):
                d = ((px - x) / sx) ** 2 + ((py - y) / sy) ** 2
                if d < best_d:
                    best, best_d = (s, px, py), d
        return best if best is not None and best_d < 0.05 ** 2 else None

    def _hover(self, panel: _Panel, scene_pos: QPointF) -> None:
        view = panel.plot.getViewBox()
        if not view.sceneBoundingRect().contains(scene_pos):
            return
        point = view.mapSceneToView(scene_pos)
        self.read_at(panel, point.x(), point.y())

    def read_at(self, panel: _Panel, x: float, y: float) -> str:
        """Show (and return) the readout of the point nearest to data position (x, y)."""
        found = self.nearest(panel, x, y)
        if found is None:
            return self.readout.text()
        s, px, py = found
        record = self._records[int(px) - 1]
        text = (f"{s.label}: {py:.4g} at epoch {record.get('epoch', int(px))} "
                f"({record.get('stage', '')})")
        self.readout.setText(text)
        return text

    def save_image(self, path: str | Path) -> Path:
        """Save both plots as one image (PNG, JPG… by the suffix)."""
        path = Path(path)
        if not self.grab().save(str(path)):
            raise OSError(f"cannot write the image {path}")
        return path

    # -- layout ----------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        return QSize(640, 300)

    def side_by_side(self) -> bool:
        """Panels side by side when wide, or unless the widget is clearly taller than wide
        (stacked panels in a short dock pushed the second one out of view)."""
        w, h = self.width(), self.height()
        return w >= 600 or (w >= 300 and h < 1.2 * w)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        direction = (QBoxLayout.Direction.LeftToRight if self.side_by_side()
                     else QBoxLayout.Direction.TopToBottom)
        if self._panels.direction() != direction:
            self._panels.setDirection(direction)
