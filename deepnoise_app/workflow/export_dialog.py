"""Export dialog: per-plate CSV reports of chosen plates into a folder (engine ``export``).

Options: the challenge submission CSV and a plate-map PNG per plate. Asks before
overwriting files already in the folder; lists what was written when the engine is done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.engine import STOPPED, EngineBridge
from deepnoise_engine.contract.results import ExportResult
from deepnoise_engine.report.plate_report import list_plate_reports, plate_report_name


def report_plates(score_dir: Path) -> list[tuple[str, int]]:
    """(experiment, plate) of every per-plate report in ``score_dir``, sorted."""
    return sorted(list_plate_reports(score_dir)) if score_dir.is_dir() else []


def existing_outputs(
    out: Path, plates: list[tuple[str, int]], submission: bool, figures: bool
) -> list[Path]:
    """Files the export would replace in ``out``."""
    if not out.is_dir():
        return []
    names = []
    for exp, plate in plates:
        names.append(plate_report_name(exp, plate))
        if figures:
            names.append(plate_report_name(exp, plate, ".png"))
    hits = [out / n for n in names if (out / n).exists()]
    if submission:
        hits += sorted(p for p in out.glob("submission*.csv"))
    return hits


class ExportDialog(QDialog):
    """Choose plates and a folder; ``export()`` sends the engine request and waits for it."""

    exported = Signal(list)  # written paths (str)

    def __init__(
        self,
        bridge: EngineBridge,
        score_dir: Path | None,
        out_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export reports")
        self.setMinimumWidth(560)  # room for the folder path and the file names
        self.bridge = bridge
        self.score_dir = Path(score_dir) if score_dir else None
        self.request: str | None = None
        self.written: list[str] = []
        #: Asks the user a yes/no question (replaced in scripted use).
        self.confirm: Callable[[str], bool] = self._ask
        self._overwrite = False
        self.export_out: Path | None = None  # the folder of the running / last export

        self._build_plate_list()
        self._build_options(out_dir)
        self._lay_out()
        self.export_button.clicked.connect(self.export)
        self.close_button.clicked.connect(self.accept)
        bridge.event.connect(self._on_event)
        bridge.engine_died.connect(self._on_engine_died)
        bridge.state_changed.connect(self._on_engine_state)

    def _build_plate_list(self) -> None:
        """The score folder's plates, every one checked."""
        self.source = QLabel(f"Reports from: {self.score_dir or '(nothing scored yet)'}")
        self.source.setWordWrap(True)
        self.plate_list = QListWidget()
        for exp, plate in report_plates(self.score_dir) if self.score_dir else []:
            item = QListWidgetItem(f"{exp} plate {plate}")
            item.setData(Qt.ItemDataRole.UserRole, (exp, plate))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.plate_list.addItem(item)

    def _build_options(self, out_dir: Path | None) -> None:
        """The output folder, what to write, the status and the buttons."""
        default_out = out_dir or (self.score_dir.parent / f"{self.score_dir.name}-export"
                                  if self.score_dir else Path.home())
        self.out_edit = QLineEdit(str(default_out))
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        self.submission_check = QCheckBox("Submission CSV (id_code,sirna)")
        self.submission_check.setChecked(True)
        self.figures_check = QCheckBox("Plate-map PNG per plate")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.files_view = QPlainTextEdit()
        self.files_view.setReadOnly(True)
        self.files_view.setPlaceholderText("Written files are listed here.")
        self.files_view.setMaximumHeight(120)
        self.export_button = QPushButton("Export")
        self.close_button = QPushButton("Close")
        self.export_button.setEnabled(self.plate_list.count() > 0)

    def _lay_out(self) -> None:
        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("Folder"))
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.browse_button)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.source)
        layout.addWidget(self.plate_list, 1)
        layout.addLayout(out_row)
        layout.addWidget(self.submission_check)
        layout.addWidget(self.figures_check)
        layout.addWidget(self.status)
        layout.addWidget(self.files_view)
        layout.addLayout(buttons)

    def chosen_plates(self) -> list[tuple[str, int]]:
        chosen = []
        for i in range(self.plate_list.count()):
            item = self.plate_list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                exp, plate = item.data(Qt.ItemDataRole.UserRole)
                chosen.append((str(exp), int(plate)))
        return chosen

    def set_chosen(self, plates: list[tuple[str, int]]) -> None:
        wanted = {(e, int(p)) for e, p in plates}
        for i in range(self.plate_list.count()):
            item = self.plate_list.item(i)
            exp, plate = item.data(Qt.ItemDataRole.UserRole)
            on = (str(exp), int(plate)) in wanted
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def export(self) -> str | None:
        """Check, ask before overwriting, send the export request; returns its id."""
        plates = self.chosen_plates()
        out_text = self.out_edit.text().strip()
        if self.score_dir is None or not self.score_dir.is_dir():
            self._say("Nothing to export: score the screen first.", error=True)
            return None
        if not plates:
            self._say("Choose at least one plate.", error=True)
            return None
        if not out_text:
            self._say("Choose a folder to export into.", error=True)
            return None
        out = Path(out_text).expanduser()
        if out.exists() and not out.is_dir():
            self._say(f"{out} is a file, not a folder.", error=True)
            return None
        if out.resolve() == self.score_dir.resolve():
            self._say("Choose a folder other than the score folder itself.", error=True)
            return None
        clashes = existing_outputs(out, plates, self.submission_check.isChecked(),
                                   self.figures_check.isChecked())
        self._overwrite = False
        if clashes:
            names = "\n".join(str(p.name) for p in clashes[:10])
            more = f"\n… and {len(clashes) - 10} more" if len(clashes) > 10 else ""
            if not self.confirm(f"These files exist in {out}:\n{names}{more}\nOverwrite them?"):
                self._say("Nothing exported: the existing files were kept.")
                return None
            self._overwrite = True
        params = {
            "score_dir": str(self.score_dir),
            "out": str(out),
            "plates": [f"{exp}:{plate}" for exp, plate in plates],
            "submission": self.submission_check.isChecked(),
            "figures": self.figures_check.isChecked(),
            "overwrite": self._overwrite,
        }
        self.written = []
        self.files_view.clear()
        self.export_out = out
        self.request = self.bridge.submit("export", **params)
        self.export_button.setEnabled(False)
        self._say(f"Exporting {len(plates)} plate(s) to {out}…")
        return self.request

    def _on_event(self, event: dict) -> None:
        if self.request is None or event.get("request") != self.request:
            return
        name = event.get("event")
        if name == "result":
            self.written = list(ExportResult.model_validate(event.get("result") or {}).files)
            out = self.export_out or Path(self.out_edit.text().strip()).expanduser()
            # names only when they lie in the folder (named once, in the status line)
            shown = [Path(f).name if Path(f).parent == out else f for f in self.written]
            self.files_view.setPlainText("\n".join(shown))
            self._say(f"Wrote {len(self.written)} file(s) to {out}:")
            self.request = None
            self.export_button.setEnabled(True)
            self.exported.emit(list(self.written))
        elif name == "error":
            self.request = None
            self.export_button.setEnabled(True)
            self._say(f"Export failed: {event.get('message', 'error')}", error=True)
        elif name == "cancelled":
            self.request = None
            self.export_button.setEnabled(True)
            self._say("Export cancelled.")

    def _on_engine_died(self, info: dict) -> None:
        if self.request is not None:
            self.request = None
            self.export_button.setEnabled(True)
            self._say(str(info.get("message", "The engine stopped.")), error=True)

    def _on_engine_state(self, state: str) -> None:
        if state == STOPPED and self.request is not None:  # restarted: no answer will come
            self.request = None
            self.export_button.setEnabled(True)
            self._say("Export stopped: the engine was restarted. Export again.", error=True)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #c62828;" if error else "")
        self.status.setText(text)

    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(self, "Overwrite?", text)
        return answer == QMessageBox.StandardButton.Yes
