"""Screen browser dock: a tree cell type -> experiment -> plate with counts and problem flags."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

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

from deepnoise_app.screen_cache import PerScreen
from deepnoise_app.state import AppState
from deepnoise_engine.screen.model import Plate, Screen

PLATE_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_TOOLTIP_PROBLEMS = 12


def plate_problems(plate: Plate) -> list[str]:
    """Problems of a plate's sites as readable lines: 'B02 site 2: missing channel w5'."""
    lines = []
    for well in plate.used_wells():
        if not well.sites:
            lines.append(f"{well.name}: no sites")
        for site in well.sites:
            lines.extend(f"{well.name} site {site.index}: {p.message}" for p in site.problems)
    return lines


def plate_problem_kinds(plate: Plate) -> Counter[str]:
    return Counter(p.kind for w in plate.wells.values() for s in w.sites for p in s.problems)


def problem_tooltip(title: str, lines: list[str], kinds: Counter[str] | None = None) -> str:
    text = [title]
    if kinds:
        text.append(", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.most_common()))
    text.extend(lines[:MAX_TOOLTIP_PROBLEMS])
    if len(lines) > MAX_TOOLTIP_PROBLEMS:
        text.append(f"... {len(lines) - MAX_TOOLTIP_PROBLEMS} more")
    return "\n".join(text)


@dataclass(frozen=True)
class PlateSummary:
    """What the browser shows of a plate: used wells by type, sites, problem lines."""

    counts: dict[str, int]
    sites: int
    problems: list[str]
    kinds: Counter[str]


@dataclass(frozen=True)
class ScreenSummary:
    """The browser's view of a screen: per plate, per experiment (labelled or not), and the
    screen's problems that belong to no site (as lines)."""

    plates: dict[str, PlateSummary]
    labelled: dict[str, bool]
    unsited: list[str]


def summarise_screen(screen: Screen) -> ScreenSummary:
    """One pass over every well, site and problem (RxRx1: ~0.2 s)."""
    return ScreenSummary(
        plates={
            plate.key: PlateSummary(plate.well_counts(),
                                    sum(len(w.sites) for w in plate.wells.values()),
                                    plate_problems(plate), plate_problem_kinds(plate))
            for plate in screen.plates()
        },
        labelled={name: exp.labelled for name, exp in screen.experiments.items()},
        unsited=[str(p) for p in screen.problems if not p.site_id],
    )


_SUMMARIES: PerScreen[ScreenSummary] = PerScreen(summarise_screen)


def screen_summary(screen: Screen) -> ScreenSummary:
    """The screen's summary, computed once (the screen opener does it in its worker, so
    that building the tree on the event loop is only making the items)."""
    return _SUMMARIES.get(screen)


def _tpn(counts: Counter[str] | dict[str, int]) -> str:
    """Used wells as 'treatment/positive/negative' (the T/P/N column)."""
    return "/".join(str(counts.get(k, 0))
                    for k in ("treatment", "positive_control", "negative_control"))


def _compact(n: int) -> str:
    """Short count for a narrow column: 27088 -> '27k' (the tooltip has the exact count)."""
    return str(n) if n < 10_000 else f"{n // 1000}k"


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
        summary_of = screen_summary(screen)
        summaries = summary_of.plates
        for cell_type in screen.cell_types():
            ct_item = QTreeWidgetItem([cell_type])
            ct_counts: Counter[str] = Counter()
            ct_sites = ct_problems = 0
            self.tree.addTopLevelItem(ct_item)
            exps = [e for e in screen.experiments.values() if e.cell_type == cell_type]
            for exp in sorted(exps, key=lambda e: e.name):
                # the split is in the tooltip: "(train)" would cost the name its room
                exp_item = QTreeWidgetItem([exp.name])
                labelled = "labelled" if summary_of.labelled[exp.name] else "unlabelled"
                exp_item.setToolTip(0, f"{exp.name}: cell type {exp.cell_type}, batch "
                                       f"{exp.batch}, split {exp.split}, {labelled}")
                ct_item.addChild(exp_item)
                e_counts: Counter[str] = Counter()
                e_sites = e_problems = 0
                for index in sorted(exp.plates):
                    plate = exp.plates[index]
                    summary = summaries[plate.key]
                    item = self._plate_row(plate, summary)
                    exp_item.addChild(item)
                    self._items[plate.key] = item
                    e_counts.update(summary.counts)
                    e_sites += summary.sites
                    e_problems += len(summary.problems)
                self._counts(exp_item, e_counts)
                exp_item.setText(2, str(e_sites))
                self._flag(exp_item, e_problems, f"{exp.name}: {e_problems} site problems")
                ct_counts.update(e_counts)
                ct_sites += e_sites
                ct_problems += e_problems
            self._counts(ct_item, ct_counts)
            ct_item.setText(2, str(ct_sites))
            self._flag(ct_item, ct_problems, f"{cell_type}: {ct_problems} site problems")
            ct_item.setExpanded(True)
        unsited = summary_of.unsited
        if unsited:
            item = QTreeWidgetItem(["Screen problems"])
            self._flag(item, len(unsited),
                       problem_tooltip(f"{len(unsited)} problems not tied to a site",
                                       unsited))
            self.tree.addTopLevelItem(item)
        self.tree.resizeColumnToContents(0)
        self.tree.blockSignals(False)

    def _plate_row(self, plate: Plate, summary: PlateSummary) -> QTreeWidgetItem:
        counts, sites = summary.counts, summary.sites
        item = QTreeWidgetItem([
            f"Plate {plate.index}",
            _tpn(counts),
            str(sites),
        ])
        item.setData(0, PLATE_ROLE, plate.key)
        item.setToolTip(0, f"{plate.experiment} plate {plate.index} ({plate.format.rows} x "
                           f"{plate.format.columns})")
        item.setToolTip(1, f"{len(plate.wells)} used wells of {plate.format.well_count} "
                           f"({plate.format.rows} x {plate.format.columns}): "
                           + ", ".join(f"{n} {k.replace('_', ' ')}"
                                       for k, n in counts.items() if n))
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
                           f"= {_tpn(counts)}")

    def _flag(self, item: QTreeWidgetItem, count: int, tooltip: str) -> None:
        if count <= 0:
            item.setText(3, "")
            return
        item.setText(3, _compact(count))
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
        exp, _, index = str(key).rpartition("/")
        self.state.select_plate(exp, int(index))

    def _plate_changed(self, plate: Plate | None) -> None:
        if plate is None:
            return
        item = self._items.get(plate.key)
        if item is not None and self.tree.currentItem() is not item:
            self.tree.blockSignals(True)
            self.tree.setCurrentItem(item)
            self.tree.blockSignals(False)
