"""Screen browser dock: a tree cell type -> experiment -> plate with counts and problem flags."""

from __future__ import annotations

from collections import Counter

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.models.captions import format_text, plate_name, well_counts_text
from deepnoise_app.models.predictions import split_plate_key
from deepnoise_app.models.screen_summary import (
    PlateSummary,
    compact,
    problem_tooltip,
    screen_summary,
    tpn,
)
from deepnoise_app.models.state import AppState
from deepnoise_engine.screen.model import Experiment, Plate, Screen

PLATE_ROLE = Qt.ItemDataRole.UserRole + 1


class ScreenBrowser(QWidget):
    """Tree of the open screen; selecting a plate item selects it in the AppState."""

    open_requested = Signal()

    COLUMNS = ("Screen", "T/P/N", "Sites", "!")
    HEADER_TIPS = (
        "Cell type > experiment (split) > plate",
        "Used wells: treatment / positive control / negative control",
        "Imaged sites",
        "Problems (missing or unreadable images, bad metadata rows)",
    )

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setObjectName("deepnoise-screen-browser")
        self.summary = QLabel("No screen open")
        self.summary.setWordWrap(True)
        self.open_button = QPushButton("Open screen...")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(self.COLUMNS))
        self.tree.setHeaderLabels(list(self.COLUMNS))
        self.tree.setUniformRowHeights(True)
        # names must stay readable in a narrow dock: small indentation, short numeric
        # headers, and when space still runs out elide in the middle so that the
        # distinguishing suffix ("HEPG2-03", "Plate 4") stays visible
        self.tree.setIndentation(12)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        for col, tip in enumerate(self.HEADER_TIPS):
            self.tree.headerItem().setToolTip(col, tip)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(18)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(self.COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._warn_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)

        self.open_button.clicked.connect(self.open_requested.emit)
        self.tree.currentItemChanged.connect(self._item_chosen)
        state.screen_changed.connect(self.set_screen)
        state.plate_changed.connect(self._plate_changed)
        self.set_screen(state.screen)
        self._plate_changed(state.plate)

    def plate_item(self, key: str) -> QTreeWidgetItem | None:
        return self._items.get(key)

    def set_screen(self, screen: Screen | None) -> None:
        """Rebuild the tree for ``screen``."""
        self.tree.blockSignals(True)
        self.tree.clear()
        self._items = {}
        if screen is None:
            self.summary.setText("No screen open")
            self.tree.blockSignals(False)
            return
        n_plates = sum(len(e.plates) for e in screen.experiments.values())
        self.summary.setText(
            f"<b>{screen.name or screen.root.name}</b>: {len(screen.experiments)} experiments, "
            f"{n_plates} plates, {len(screen.channels)} channels, "
            f"{len(screen.problems)} problems"
        )
        self.summary.setToolTip(str(screen.root))
        for cell_type in screen.cell_types():
            self._cell_type_rows(screen, cell_type)
        unsited = screen_summary(screen).unsited
        if unsited:
            item = QTreeWidgetItem(["Screen problems"])
            self._flag(item, len(unsited),
                       problem_tooltip(f"{len(unsited)} problems not tied to a site",
                                       unsited))
            self.tree.addTopLevelItem(item)
        self.tree.resizeColumnToContents(0)
        self.tree.blockSignals(False)

    def _cell_type_rows(self, screen: Screen, cell_type: str) -> None:
        """A cell type's row with its experiments' rows (and their plates') under it."""
        item = QTreeWidgetItem([cell_type])
        self.tree.addTopLevelItem(item)
        counts: Counter[str] = Counter()
        sites = problems = 0
        exps = [e for e in screen.experiments.values() if e.cell_type == cell_type]
        for exp in sorted(exps, key=lambda e: e.name):
            exp_counts, exp_sites, exp_problems = self._experiment_rows(screen, exp, item)
            counts.update(exp_counts)
            sites += exp_sites
            problems += exp_problems
        self._counts(item, counts)
        item.setText(2, str(sites))
        self._flag(item, problems, f"{cell_type}: {problems} site problems")
        item.setExpanded(True)

    def _experiment_rows(self, screen: Screen, exp: Experiment, parent: QTreeWidgetItem
                         ) -> tuple[Counter[str], int, int]:
        """An experiment's row and its plates' rows; returns its (counts, sites, problems)."""
        summary_of = screen_summary(screen)
        # the split is in the tooltip: "(train)" would cost the name its room
        item = QTreeWidgetItem([exp.name])
        labelled = "labelled" if summary_of.labelled[exp.name] else "unlabelled"
        item.setToolTip(0, f"{exp.name}: cell type {exp.cell_type}, batch "
                           f"{exp.batch}, split {exp.split}, {labelled}")
        parent.addChild(item)
        counts: Counter[str] = Counter()
        sites = problems = 0
        for index in sorted(exp.plates):
            plate = exp.plates[index]
            summary = summary_of.plates[plate.key]
            row = self._plate_row(plate, summary)
            item.addChild(row)
            self._items[plate.key] = row
            counts.update(summary.counts)
            sites += summary.sites
            problems += len(summary.problems)
        self._counts(item, counts)
        item.setText(2, str(sites))
        self._flag(item, problems, f"{exp.name}: {problems} site problems")
        return counts, sites, problems

    def _plate_row(self, plate: Plate, summary: PlateSummary) -> QTreeWidgetItem:
        counts, sites = summary.counts, summary.sites
        item = QTreeWidgetItem([
            f"Plate {plate.index}",
            tpn(counts),
            str(sites),
        ])
        item.setData(0, PLATE_ROLE, plate.key)
        item.setToolTip(0, f"{plate_name(plate)} ({format_text(plate)})")
        item.setToolTip(1, f"{len(plate.wells)} used wells of {plate.format.well_count} "
                           f"({format_text(plate)}): {well_counts_text(counts)}")
        lines = summary.problems
        self._flag(item, len(lines),
                   problem_tooltip(f"{plate.key}: {len(lines)} problems", lines,
                                   summary.kinds))
        return item

    @staticmethod
    def _counts(item: QTreeWidgetItem, counts: Counter[str]) -> None:
        """Aggregate rows: the total of used wells (narrow), T/P/N in the tooltip."""
        item.setText(1, str(sum(counts.values())))
        item.setToolTip(1, f"{sum(counts.values())} used wells: treatment/positive/negative "
                           f"= {tpn(counts)}")

    def _flag(self, item: QTreeWidgetItem, count: int, tooltip: str) -> None:
        if count <= 0:
            item.setText(3, "")
            return
        item.setText(3, compact(count))
        item.setIcon(3, self._warn_icon)
        item.setForeground(3, QBrush(QColor(230, 120, 40)))
        for col in range(len(self.COLUMNS)):
            if col == 0 and item.toolTip(0):  # keep the name's own tooltip first
                item.setToolTip(0, f"{item.toolTip(0)}\n{tooltip}")
            elif col != 1:
                item.setToolTip(col, tooltip)

    def _item_chosen(self, current: QTreeWidgetItem | None, _prev: object) -> None:
        if current is None:
            return
        key = current.data(0, PLATE_ROLE)
        if not key:
            return
        self.state.select_plate(*split_plate_key(str(key)))

    def _plate_changed(self, plate: Plate | None) -> None:
        if plate is None:
            return
        item = self._items.get(plate.key)
        if item is not None and self.tree.currentItem() is not item:
            self.tree.blockSignals(True)
            self.tree.setCurrentItem(item)
            self.tree.blockSignals(False)
