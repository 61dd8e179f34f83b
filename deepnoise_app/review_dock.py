"""The review queue dock: walk through the wells that deserve a look and decide.

A click or the arrow keys move through the queue; the chosen well is selected in the
AppState, so the plate map and the well viewer show it; the top-5 calls are listed here.
Accept (A) / Reject (R) / the note are saved at once into ``{score_dir}/review.csv``
(atomically; reloaded when the score folder is opened again) and ``export`` adds them to
the per-plate CSVs. The ranking and filters live in ``review_queue`` (Qt-free).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.models.captions import review_details
from deepnoise_app.models.predictions import plate_key
from deepnoise_app.models.review_queue import REASONS, build_queue, filter_queue
from deepnoise_app.models.state import AppState
from deepnoise_engine.report.io import ReportError
from deepnoise_engine.report.review import empty_decisions, read_decisions, set_decision

COLUMNS = ["well", "confidence", "why", "decision"]


class ReviewDock(QWidget):
    """The ranked queue, its filters, the current well's calls and the decision buttons."""

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("deepnoise-review")
        self.state = state
        self.queue = pd.DataFrame()
        self.shown = pd.DataFrame()
        self.decisions = empty_decisions()
        self._stale = True
        self._build()
        state.predictions_changed.connect(lambda: QTimer.singleShot(0, self, self.reload))
        self.reload()

    def _build(self) -> None:
        self.reason_boxes: dict[str, QCheckBox] = {}
        filters = QGridLayout()
        for i, reason in enumerate(REASONS):
            box = QCheckBox(reason)
            box.setChecked(True)
            box.toggled.connect(self.refilter)
            self.reason_boxes[reason] = box
            filters.addWidget(box, i // 3, i % 3)
        self.state_filter = QComboBox()
        self.state_filter.addItems(["all", "undecided", "accepted", "rejected"])
        self.state_filter.currentTextChanged.connect(self.refilter)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("deepnoise-review-queue")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.currentCellChanged.connect(lambda row, *_: self._current_changed(row))
        self.table.setMinimumHeight(100)  # a few rows even in a crowded dock area
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.details = QLabel("")
        self.details.setObjectName("deepnoise-review-details")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.accept_button = QPushButton("Accept (A)")
        self.reject_button = QPushButton("Reject (R)")
        self.clear_button = QPushButton("Undecide")
        self.note = QLineEdit()
        self.note.setPlaceholderText("note on this well (Enter saves)")
        self.accept_button.clicked.connect(lambda: self.decide("accepted"))
        self.reject_button.clicked.connect(lambda: self.decide("rejected"))
        self.clear_button.clicked.connect(lambda: self.decide(""))
        self.note.returnPressed.connect(self.save_note)
        self.table.installEventFilter(self)  # A / R decide while the queue has the keys
        self.count = QLabel("")
        buttons = QHBoxLayout()
        for widget in (self.accept_button, self.reject_button, self.clear_button):
            buttons.addWidget(widget)
        row = QHBoxLayout()
        row.addWidget(QLabel("Show"))
        row.addWidget(self.state_filter)
        row.addWidget(self.count, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        layout.addWidget(self.note)

    # -- data ---------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._stale:
            QTimer.singleShot(0, self, self.reload)

    def reload(self, force: bool = False) -> None:
        """Rebuild the queue from the predictions and reload the saved decisions (only
        while the dock is shown: a hidden dock reloads when it is shown)."""
        if not self.isVisible() and not force:
            self._stale = True
            return
        self._stale = False
        self.decisions, problem = empty_decisions(), ""
        if self.state.score_dir is not None:
            try:
                self.decisions = read_decisions(self.state.score_dir)
            except ReportError as exc:  # never overwrite a file we could not read
                problem = f"{exc} - fix or move it to review wells"
        for button in (self.accept_button, self.reject_button, self.clear_button):
            button.setEnabled(not problem)
        self.note.setEnabled(not problem)
        self.queue = build_queue(self.state.predictions, screen=self.state.screen,
                                 score_dir=self.state.score_dir)
        self.refilter()
        if problem:
            self.details.setText(problem)

    def refilter(self, *_args: Any) -> None:
        chosen = {r for r, box in self.reason_boxes.items() if box.isChecked()}
        self.shown = filter_queue(self.queue, chosen, decision=self.state_filter.currentText(),
                                  decisions=self.decisions) if len(self.queue) else self.queue
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.shown))
        for r, item in enumerate(self.shown.itertuples(index=False)):
            conf = item.confidence
            values = [item.id_code, "" if pd.isna(conf) else f"{conf:.2f}", item.why,
                      self._decision_of(item.id_code)]
            for c, text in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.blockSignals(False)
        for column in (0, 1, 3):
            self.table.resizeColumnToContents(column)
        self.count.setText(f"{len(self.shown)} of {len(self.queue)} wells")
        self.details.setText("" if len(self.shown) else "Nothing to review.")

    def _decision_of(self, id_code: str) -> str:
        if id_code in self.decisions.index:
            return str(self.decisions.loc[id_code, "decision"])
        return ""

    # -- walking and deciding -----------------------------------------------------------------
    def current_id(self) -> str | None:
        row = self.table.currentRow()
        return None if row < 0 or row >= len(self.shown) else str(self.shown.iloc[row]["id_code"])

    def _current_changed(self, row: int) -> None:
        if row < 0 or row >= len(self.shown):
            return
        item = self.shown.iloc[row]
        if self.state.screen is not None:
            try:
                self.state.go_to_well(item["experiment"], int(item["plate"]), item["well"])
            except (KeyError, RuntimeError) as exc:
                self.details.setText(f"cannot show {item['id_code']}: {exc}")
                return
        self.details.setText(self._describe(item))
        note = self.decisions.loc[item["id_code"], "note"] if item["id_code"] in \
            self.decisions.index else ""
        self.note.setText(str(note))

    def _describe(self, item: pd.Series) -> str:
        key = plate_key(item["experiment"], int(item["plate"]))
        return review_details(item["id_code"], self.state.well_prediction(item["well"], key),
                              item["why"])

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table and event.type() == QEvent.Type.KeyPress and not (
                event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            decision = {Qt.Key.Key_A: "accepted", Qt.Key.Key_R: "rejected"}.get(event.key())
            if decision is not None:
                self.decide(decision)
                return True
        return super().eventFilter(watched, event)

    def select_index(self, row: int) -> None:
        """Make queue row ``row`` the current one (as a click would)."""
        self.table.setCurrentCell(row, 0)

    def decide(self, decision: str) -> None:
        """Record ``decision`` for the current well, save, and move to the next one."""
        id_code = self.current_id()
        if id_code is None or self.state.score_dir is None:
            return
        self._save(id_code, decision=decision, note=self.note.text())
        row = self.table.currentRow()
        self.table.item(row, COLUMNS.index("decision")).setText(decision)
        if row + 1 < self.table.rowCount():
            self.select_index(row + 1)

    def save_note(self) -> None:
        id_code = self.current_id()
        if id_code is not None and self.state.score_dir is not None:
            self._save(id_code, note=self.note.text())

    def _save(self, id_code: str, **fields: Any) -> None:
        try:
            self.decisions = set_decision(self.state.score_dir, id_code, **fields)
        except (OSError, ReportError, ValueError) as exc:
            self.details.setText(f"cannot save the decision: {exc}")



class ReviewWidget(ReviewDock):
    """The review queue for napari's Plugins menu."""

    def __init__(self, napari_viewer: Any) -> None:
        from deepnoise_app.state import state_for

        super().__init__(state_for(napari_viewer))
