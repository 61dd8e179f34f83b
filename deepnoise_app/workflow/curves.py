"""Live training curves like the paper's Fig. 5, drawn with QPainter (no chart library).

Two panels (side by side, or stacked in a tall narrow dock): losses (train, validation)
and validation accuracy (students and teachers, raw and plate-balanced, plus the ensemble
when present). Points come from the
training's metrics records (one per epoch; ``metrics.jsonl`` keys).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from qtpy.QtCore import QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget


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
    the legend fits a narrow dock in one or two rows.
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


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-6:
        ticks.append(round(t, 10))
        t += step
    return ticks


class CurvesWidget(QWidget):
    """Loss and accuracy curves per epoch; feed it metrics records with ``add_record``.

    The x value of a record is its position in the run (shared epochs, then the
    fine-tuning epochs per cell type), so stages follow each other left to right;
    stage changes are drawn as vertical dotted lines with the stage name.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._records: list[dict] = []
        self.setMinimumSize(360, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(self.backgroundRole(), QColor("white"))
        self.setPalette(pal)

    # -- data ------------------------------------------------------------------------
    def clear(self) -> None:
        self._records.clear()
        self.update()

    def set_records(self, records: list[dict]) -> None:
        self._records = [dict(r) for r in records]
        self.update()

    def add_record(self, record: dict) -> None:
        """Append one metrics record (an epoch); accepts ``{"record": {...}}`` events too."""
        if "record" in record and isinstance(record["record"], dict):
            record = record["record"]
        self._records.append(dict(record))
        self.update()

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

    def stage_starts(self) -> list[tuple[float, str]]:
        """(x, stage) where a new stage begins."""
        starts, last = [], None
        for i, record in enumerate(self._records, start=1):
            stage = str(record.get("stage", ""))
            if stage != last:
                starts.append((float(i), stage))
                last = stage
        return starts

    # -- drawing ---------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        return QSize(640, 260)

    def side_by_side(self) -> bool:
        """Panels side by side when wide, or when stacking would leave them too flat."""
        w, h = self.width(), self.height()
        return w >= 600 or (w >= 360 and h < 340)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        w, h = self.width(), self.height()
        if self.side_by_side():
            loss_area, acc_area = QRectF(0, 0, w / 2, h), QRectF(w / 2, 0, w - w / 2, h)
        else:
            loss_area, acc_area = QRectF(0, 0, w, h / 2), QRectF(0, h / 2, w, h - h / 2)
        self._draw_panel(painter, loss_area, "Loss per epoch", LOSS_SERIES, None)
        self._draw_panel(
            painter, acc_area, "Validation accuracy per epoch", ACC_SERIES, (0.0, 1.0)
        )
        painter.end()

    def _draw_panel(
        self,
        p: QPainter,
        area: QRectF,
        title: str,
        series: tuple[Series, ...],
        y_range: tuple[float, float] | None,
    ) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() * 0.85, 6.0))
        p.setFont(font)
        fm = p.fontMetrics()
        line_h = fm.height()
        present = [s for s in series if self.series(s.key)]
        entries = legend_entries(present)
        legend_rows = 0
        if entries:
            entry_w = max(fm.horizontalAdvance(e[0]) for e in entries) + 30
            cols = max(1, min(len(entries), int((area.width() - 10) // entry_w)))
            legend_rows = math.ceil(len(entries) / cols)
        left, right = area.left() + fm.horizontalAdvance("0.000") + 10, area.right() - 10
        top = area.top() + line_h + 6
        bottom = area.bottom() - line_h - 8 - legend_rows * line_h
        plot = QRectF(QPointF(left, top), QPointF(right, max(bottom, top + 20)))

        p.setPen(QColor("#222222"))
        p.drawText(
            QRectF(area.left(), area.top() + 2, area.width(), line_h),
            Qt.AlignmentFlag.AlignHCenter,
            title,
        )
        p.setPen(QPen(QColor("#888888"), 1))
        p.drawRect(plot)

        n = len(self._records)
        x_lo, x_hi = 1.0, float(max(n, 2))
        ys = [y for s in present for _, y in self.series(s.key)]
        if y_range is not None:
            y_lo, y_hi = y_range
            if ys and max(ys) > 1.0:  # accuracy given in percent
                y_hi = 100.0
        elif ys:
            y_lo, y_hi = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
        else:
            y_lo, y_hi = 0.0, 1.0

        def to_px(x: float, y: float) -> QPointF:
            fx = (x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5
            fy = (y - y_lo) / (y_hi - y_lo) if y_hi > y_lo else 0.5
            return QPointF(plot.left() + fx * plot.width(), plot.bottom() - fy * plot.height())

        # grid and y ticks: as many as fit without the labels touching
        for t in _nice_ticks(y_lo, y_hi, max(3, min(5, int(plot.height() // (1.6 * line_h))))):
            if t < y_lo - 1e-9 or t > y_hi + 1e-9:
                continue
            pt = to_px(x_lo, t)
            p.setPen(QPen(QColor("#e6e6e6"), 1))
            p.drawLine(QPointF(plot.left(), pt.y()), QPointF(plot.right(), pt.y()))
            p.setPen(QColor("#444444"))
            label = f"{t:g}"
            p.drawText(
                QRectF(area.left(), pt.y() - line_h / 2, plot.left() - area.left() - 4, line_h),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
        # x ticks (epochs)
        for t in _nice_ticks(x_lo, x_hi, 6):
            if t < x_lo or t > x_hi or abs(t - round(t)) > 1e-9:
                continue
            pt = to_px(t, y_lo)
            p.setPen(QColor("#444444"))
            p.drawText(
                QRectF(pt.x() - 20, plot.bottom() + 2, 40, line_h),
                Qt.AlignmentFlag.AlignHCenter,
                str(int(t)),
            )
        # stage boundaries
        starts = self.stage_starts()
        if len(starts) > 1:
            for x, stage in starts[1:]:
                pt = to_px(x - 0.5, y_hi)
                p.setPen(QPen(QColor("#999999"), 1, Qt.PenStyle.DotLine))
                p.drawLine(QPointF(pt.x(), plot.top()), QPointF(pt.x(), plot.bottom()))
                p.drawText(QPointF(pt.x() + 2, plot.top() + line_h), stage)

        if not present:
            p.setPen(QColor("#999999"))
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "waiting for the first epoch")
            return
        # curves
        for s in present:
            pts = [to_px(x, y) for x, y in self.series(s.key)]
            pen = QPen(QColor(s.colour), 2)
            if s.dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            for a, b in itertools.pairwise(pts):
                p.drawLine(a, b)
            p.setBrush(QColor(s.colour))
            p.setPen(QPen(QColor(s.colour), 1))
            for pt in pts:
                p.drawEllipse(pt, 2.5, 2.5)
            p.setBrush(Qt.BrushStyle.NoBrush)
        # legend under the plot: as many columns as the widest label allows
        entry_w = max(fm.horizontalAdvance(e[0]) for e in entries) + 30
        cols = max(1, min(len(entries), int((area.width() - 10) // entry_w)))
        for i, (label, colour, dashed) in enumerate(entries):
            x = area.left() + 10 + (i % cols) * entry_w
            y = plot.bottom() + line_h + 6 + (i // cols) * line_h
            pen = QPen(QColor(colour), 2)
            if dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(x, y + line_h / 2), QPointF(x + 18, y + line_h / 2))
            p.setPen(QColor("#222222"))
            p.drawText(QPointF(x + 22, y + fm.ascent()), label)
