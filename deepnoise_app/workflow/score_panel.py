"""Score: chosen plates, experiments or the whole screen with the loaded models.

Sends the engine a ``score`` request; on its result the per-plate reports are loaded into
the app state (``state.load_predictions(score_dir)``) so they show on the plate map and
the mosaic. The raw / balanced toggle drives ``state.prediction_mode``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.engine import STOPPED, EngineBridge
from deepnoise_app.workflow.training_view import format_eta
from deepnoise_engine.contract.choices import TTA, Balance
from deepnoise_engine.contract.events import Progress
from deepnoise_engine.contract.results import ScoreResult


def plate_token(experiment: str, index: int) -> str:
    """A plate as the engine's ``plates`` parameter names it: ``EXP:P``."""
    return f"{experiment}:{int(index)}"


def folder_has_files(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def carry_earlier_reports(earlier: Path | None, out: Path) -> int:
    """Copy the per-plate reports of an earlier score folder that ``out`` lacks into
    ``out`` (each written atomically, then listed in its manifest), so the new folder holds
    every scored plate and Export… finds them all. Returns how many were copied."""
    from deepnoise_app.models.predictions import plate_key, report_plate_keys
    from deepnoise_engine.report.output_set import add_to_score_set
    from deepnoise_engine.report.plate_report import list_plate_reports

    if earlier is None or not Path(earlier).is_dir() or Path(earlier) == Path(out):
        return 0
    have = set(report_plate_keys(out))
    files = {}
    for (exp, index), path in list_plate_reports(Path(earlier)).items():
        if plate_key(exp, index) not in have and not (out / path.name).exists():
            files[path.name] = path.read_bytes()
    # the new folder's manifest lists them too, so readers of the set see every plate
    add_to_score_set(out, files, source=str(earlier))
    return len(files)


def _row(items: list[Any]) -> QHBoxLayout:
    """A row of widgets: ``(widget, stretch)`` pairs, and an int for a stretch."""
    row = QHBoxLayout()
    for item in items:
        if isinstance(item, int):
            row.addStretch(item)
        elif isinstance(item, tuple):
            row.addWidget(*item)
        else:
            row.addWidget(item)
    return row


class ScorePanel(QWidget):
    """Plate scope tree, output folder, Score button, progress and the raw/balanced toggle."""

    scored = Signal(str)  # score folder, after the predictions were loaded

    def __init__(
        self,
        bridge: EngineBridge,
        state: Any,
        models: Callable[[], list[str]],
        scores_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.state = state
        self.models = models
        self.scores_dir = Path(scores_dir) if scores_dir else Path.home() / "deepnoise-scores"
        self.request: str | None = None
        self.out_dir: Path | None = None
        self.last_result: dict | None = None
        #: Asks the user a yes/no question (replaced in scripted use).
        self.confirm: Callable[[str], bool] = self._ask
        self._build_choices()
        self._build_run_widgets()
        self._lay_out()
        self._connect()
        self.refresh()
        self.show_models()

    def _build_choices(self) -> None:
        """The plate tree and the score request's options (choices from the contract)."""
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Plates to score"])
        self.tree.setMinimumHeight(90)
        self.tree.setMaximumHeight(220)  # a tall dock leaves no large empty box here
        self.tree.itemChanged.connect(self._item_changed)
        self.all_button = QPushButton("Whole screen")
        self.plate_button = QPushButton("Current plate")
        self.balance_combo = QComboBox()
        self.balance_combo.addItems(list(get_args(Balance)))
        self.balance_combo.setToolTip("Plate prior: each siRNA at most once per plate")
        self.tta_combo = QComboBox()
        self.tta_combo.addItems([str(n) for n in sorted(get_args(TTA), reverse=True)])
        self.tta_combo.setToolTip("Test-time augmentation: 8 flips/rotations or none")
        self.out_edit = QLineEdit()
        self.out_edit.textEdited.connect(lambda _t: self._clear_error())

    def _build_run_widgets(self) -> None:
        """Score/Cancel, the progress bar, the status lines and the raw/balanced toggle."""
        self.score_button = QPushButton("Score")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(False)  # no "0%" before anything ran
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.models_label = QLabel()
        self.models_label.setWordWrap(True)
        self.balanced_radio = QRadioButton("Balanced")
        self.raw_radio = QRadioButton("Raw")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.balanced_radio)
        self.mode_group.addButton(self.raw_radio)
        mode = getattr(self.state, "prediction_mode", "balanced")
        self.balanced_radio.setChecked(mode != "raw")
        self.raw_radio.setChecked(mode == "raw")

    def _lay_out(self) -> None:
        rows = (
            [self.all_button, self.plate_button, 1],
            [QLabel("Balance"), self.balance_combo, QLabel("TTA"), self.tta_combo, 1],
            [QLabel("Output"), (self.out_edit, 1)],
            [self.score_button, self.cancel_button, (self.progress_bar, 1)],
            [QLabel("Show predictions:"), self.balanced_radio, self.raw_radio, 1],
        )
        scope, opts, out_row, run_row, mode_row = (_row(items) for items in rows)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(scope)
        layout.addWidget(self.tree)
        layout.addLayout(opts)
        layout.addLayout(out_row)
        layout.addWidget(self.models_label)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addLayout(mode_row)

    def _connect(self) -> None:
        self.all_button.clicked.connect(lambda: self.select_plates(None))
        self.plate_button.clicked.connect(self._select_current_plate)
        self.score_button.clicked.connect(self.score)
        self.cancel_button.clicked.connect(self.cancel)
        self.balanced_radio.toggled.connect(self._mode_toggled)
        self.bridge.event.connect(self._on_event)
        self.bridge.engine_died.connect(self._on_engine_died)
        self.bridge.state_changed.connect(self._on_engine_state)
        if hasattr(self.state, "screen_changed"):
            self.state.screen_changed.connect(self.refresh)
        if hasattr(self.state, "prediction_mode_changed"):
            self.state.prediction_mode_changed.connect(self._mode_changed)

    def show_models(self, *_args: Any) -> None:
        """Say which models a Score uses (several: their ensemble)."""
        self._clear_error()
        names = [Path(m).name for m in self.models()]
        if not names:
            self.models_label.setText("With: no model loaded yet (load or train one).")
        elif len(names) == 1:
            self.models_label.setText(f"With: {names[0]}")
        else:
            self.models_label.setText(f"With the ensemble of {len(names)}: {', '.join(names)}")

    # -- scope -----------------------------------------------------------------------
    def refresh(self, *_args: Any) -> None:
        """Rebuild the plate tree from the open screen (everything checked)."""
        if self.request is None:  # the last run's line and bar belonged to the last screen
            self._say("")
            self.progress_bar.setValue(0)
            self.progress_bar.setTextVisible(False)
        self.tree.blockSignals(True)
        self.tree.clear()
        screen = getattr(self.state, "screen", None)
        if screen is not None:
            for name in sorted(screen.experiments):
                exp = screen.experiments[name]
                top = QTreeWidgetItem([f"{name} ({exp.cell_type})"])
                top.setData(0, Qt.ItemDataRole.UserRole, name)
                top.setFlags(top.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                top.setCheckState(0, Qt.CheckState.Checked)
                for index in sorted(exp.plates):
                    child = QTreeWidgetItem([f"Plate {index}"])
                    child.setData(0, Qt.ItemDataRole.UserRole, plate_token(name, index))
                    child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    child.setCheckState(0, Qt.CheckState.Checked)
                    top.addChild(child)
                self.tree.addTopLevelItem(top)
        self.tree.blockSignals(False)
        self._suggest_out()

    def _suggest_out(self) -> None:
        screen = getattr(self.state, "screen", None)
        name = (screen.name or Path(screen.root).name) if screen is not None else "screen"
        self.out_edit.setText(str(self.scores_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"))

    def _item_changed(self, item: QTreeWidgetItem, _column: int) -> None:
        self._clear_error()
        self.tree.blockSignals(True)
        if item.parent() is None:  # an experiment: (un)check its plates
            for i in range(item.childCount()):
                item.child(i).setCheckState(0, item.checkState(0))
        else:
            parent = item.parent()
            states = {parent.child(i).checkState(0) for i in range(parent.childCount())}
            parent.setCheckState(
                0, states.pop() if len(states) == 1 else Qt.CheckState.PartiallyChecked
            )
        self.tree.blockSignals(False)

    def select_plates(self, tokens: list[str] | None) -> None:
        """Check exactly these plates (``EXP:P``); None checks the whole screen."""
        self.tree.blockSignals(True)
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                child = top.child(j)
                on = tokens is None or child.data(0, Qt.ItemDataRole.UserRole) in tokens
                child.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            if top.childCount():
                self.tree.blockSignals(False)
                self._item_changed(top.child(0), 0)
                self.tree.blockSignals(True)
        self.tree.blockSignals(False)

    def _select_current_plate(self) -> None:
        plate = getattr(self.state, "plate", None)
        if plate is not None:
            self.select_plates([plate_token(plate.experiment, plate.index)])

    def chosen_plates(self) -> list[str] | None:
        """Checked plates as ``EXP:P``; None when every plate is checked (whole screen)."""
        chosen, total = [], 0
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                total += 1
                child = top.child(j)
                if child.checkState(0) == Qt.CheckState.Checked:
                    chosen.append(str(child.data(0, Qt.ItemDataRole.UserRole)))
        return None if len(chosen) == total else chosen

    # -- scoring ---------------------------------------------------------------------
    def request_params(self) -> dict[str, Any]:
        screen = getattr(self.state, "screen", None)
        params: dict[str, Any] = {
            "data": str(screen.root) if screen is not None else "",
            "models": list(self.models()),
            "out": str(Path(self.out_edit.text().strip()).expanduser()),
            "balance": self.balance_combo.currentText(),
            "tta": int(self.tta_combo.currentText()),
        }
        plates = self.chosen_plates()
        if plates is not None:
            params["plates"] = plates
        return params

    def problems(self) -> list[str]:
        problems = []
        if getattr(self.state, "screen", None) is None:
            problems.append("Open a screen first.")
        if not self.models():
            problems.append("Load a model (or train one) first.")
        if self.chosen_plates() == []:
            problems.append("Choose at least one plate.")
        if not self.out_edit.text().strip():
            problems.append("Choose an output folder.")
        return problems

    def score(self) -> str | None:
        """Send the score request; returns the request id (None when something is missing)."""
        problems = self.problems()
        if problems:
            self._say(" ".join(problems), error=True)
            return None
        params = self.request_params()
        out = Path(params["out"])
        if folder_has_files(out):
            if not self.confirm(f"{out} already holds files. Overwrite the reports in it?"):
                return None
            params["overwrite"] = True
        self.out_dir = out
        self.last_result = None
        self.request = self.bridge.submit("score", **params)
        self.score_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setTextVisible(True)
        self._say("Scoring… (waiting for the engine)")
        return self.request

    def cancel(self) -> None:
        if self.request:
            self.bridge.cancel(self.request)

    def _on_event(self, event: dict) -> None:
        if self.request is None or event.get("request") != self.request:
            return
        name = event.get("event")
        if name == "progress":
            progress = Progress.model_validate(event)
            if progress.total:
                self.progress_bar.setRange(0, 1000)
                self.progress_bar.setValue(int(1000 * min(progress.done / progress.total, 1.0)))
            eta = format_eta(progress.eta_s)
            self._say(f"{progress.stage or 'scoring'}… {('ETA ' + eta) if eta else ''}".strip())
        elif name == "result":
            self.last_result = ScoreResult.model_validate(event.get("result") or {}).model_dump()
            self._finish()
            self._load(self.out_dir)
        elif name == "error":
            self._finish(complete=False)
            self._say(f"Scoring failed: {event.get('message', 'error')}", error=True)
        elif name == "cancelled":
            self._finish(complete=False)
            self._say("Scoring cancelled; nothing was loaded.")

    def _load(self, out: Path | None) -> None:
        if out is None:
            return
        scored = len(self._scored_keys(out))
        try:  # the plates scored before stay (scoring one plate adds to the others)
            kept = carry_earlier_reports(getattr(self.state, "score_dir", None), out)
            self.state.load_predictions(out)
        except Exception as exc:  # shown, never raised into the event loop
            self._say(f"Scored, but the reports could not be loaded: {exc}", error=True)
            return
        also = f" The {kept} plate(s) scored before were kept with them." if kept else ""
        self._say(f"Scored {scored} plate(s); reports in {out}.{also} Export… writes them "
                  "elsewhere.")
        self._suggest_out()  # the next Score goes to a new folder: nothing is overwritten
        self.scored.emit(str(out))

    @staticmethod
    def _scored_keys(out: Path) -> list[str]:
        """Plate keys ("EXP/P") of the reports in a score folder."""
        from deepnoise_app.models.predictions import report_plate_keys

        return report_plate_keys(out)

    def _finish(self, *, complete: bool = True) -> None:
        """The request is over: full bar when it completed, an empty one otherwise."""
        self.request = None
        self.score_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1 if complete else 0)
        self.progress_bar.setTextVisible(complete)

    def _on_engine_died(self, info: dict) -> None:
        if self.request is not None:
            self._finish(complete=False)
            self._say(str(info.get("message", "The engine stopped.")), error=True)

    def _on_engine_state(self, state: str) -> None:
        if state == STOPPED and self.request is not None:  # restarted: no answer will come
            self._finish(complete=False)
            self._say("Scoring stopped: the engine was restarted. Score again.", error=True)

    # -- raw / balanced --------------------------------------------------------------
    def _mode_toggled(self, balanced: bool) -> None:
        mode = "balanced" if balanced else "raw"
        setter = getattr(self.state, "set_prediction_mode", None)
        if setter is not None:
            setter(mode)
        else:
            self.state.prediction_mode = mode

    def _mode_changed(self, mode: str) -> None:
        radio = self.raw_radio if mode == "raw" else self.balanced_radio
        if not radio.isChecked():
            radio.setChecked(True)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #c62828;" if error else "")
        self.status.setText(text)
        self._error_shown = error

    def _clear_error(self) -> None:
        """An error line goes once what it asked for may have changed."""
        if getattr(self, "_error_shown", False):
            self._say("")

    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(self, "DeepNoise", text)
        return answer == QMessageBox.StandardButton.Yes
