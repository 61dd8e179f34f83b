"""The training view: progress with ETA, live curves, the log, Cancel and Resume.

It follows one training request of an ``EngineBridge`` at a time (``follow(request,
run_dir)``); everything arrives as signals on the main thread, so the UI stays responsive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.engine import STOPPED, EngineBridge
from deepnoise_app.models.training_runs import format_eta, is_resumable, read_metrics
from deepnoise_app.workflow.curves import CurvesWidget


class TrainingView(QWidget):
    """Progress bar + ETA, curves, log, Cancel and Resume for one training run."""

    #: Emitted with the run's result dict when a training finishes successfully.
    training_done = Signal(dict)
    #: Emitted with the run folder when the user resumes a run from here.
    resume_requested = Signal(str)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.request: str | None = None
        self.run_dir: Path | None = None
        self.last_result: dict | None = None
        self.data: str | None = None  # the screen of the followed run
        #: The screen a resume falls back to when the run's screen is not known (the dock
        #: sets it to the open screen): run folders do not record their screen path.
        self.default_data: Callable[[], str | None] = lambda: None
        self._data_by_run: dict[str, str] = {}
        self.status = "idle"  # idle | queued | running | done | cancelled | failed
        self._started_at: float | None = None

        self._build()

        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self._ask_resume)
        self.open_button.clicked.connect(self._ask_show_run)
        self.save_button.clicked.connect(self._ask_save_image)
        bridge.event.connect(self._on_event)
        bridge.engine_died.connect(self._on_engine_died)
        bridge.state_changed.connect(self._on_engine_state)

    # -- following a run -------------------------------------------------------------

    def _build(self) -> None:
        """Title and run buttons, progress with ETA, Cancel and Resume, curves over the log."""
        self.title = QLabel("No training running.")
        # one line that may be cut: a wrapped label asks for many lines' height in a
        # narrow dock (the curves were pushed out of view); the tooltip has it all
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        self.eta_label = QLabel("")
        self.curves = CurvesWidget()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)  # bounded memory for long runs
        self.log_view.setPlaceholderText("The training log appears here.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop at the next step and keep a resumable checkpoint")
        self.cancel_button.setEnabled(False)
        self.resume_button = QPushButton("Resume…")
        self.resume_button.setToolTip("Continue an interrupted run from its last checkpoint")

        self.open_button = QPushButton("Show run…")
        self.open_button.setToolTip("Show the curves of a training run folder (metrics.jsonl)")
        self.save_button = QPushButton("Save image…")
        self.save_button.setToolTip("Save the curves as a PNG image")

        # the controls first: in a short dock they stay in view, the curves take the rest
        bar = QHBoxLayout()
        bar.addWidget(self.progress_bar, 1)
        bar.addWidget(self.eta_label)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.resume_button)
        top = QHBoxLayout()  # the title with the run's files: one row less
        top.addWidget(self.title, 1)
        top.addWidget(self.open_button)
        top.addWidget(self.save_button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.curves)
        splitter.addWidget(self.log_view)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([400, 90])  # the curves get most of a short dock
        self.log_view.setMinimumHeight(40)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)

    def follow(
        self,
        request: str,
        run_dir: str | Path | None,
        title: str = "Training",
        data: str | None = None,
    ) -> None:
        """Show the progress of bridge request ``request`` (a train or resume job on ``data``)."""
        self.request = request
        self.run_dir = Path(run_dir) if run_dir else None
        self.data = data
        if data and run_dir:
            self._data_by_run[str(Path(run_dir))] = str(data)
        self.last_result = None
        self.status = "queued"
        self._started_at = None
        self.curves.set_records(read_metrics(self.run_dir) if self.run_dir else [])
        self.log_view.clear()
        self._set_title(f"{title}: {self._run_name()} (waiting for the engine)")
        self.progress_bar.setRange(0, 0)  # busy until the first progress event
        self.progress_bar.setFormat("%p%")
        self.eta_label.setText("")
        self.cancel_button.setEnabled(True)
        self.resume_button.setEnabled(False)

    def resume(self, run_dir: str | Path, data: str | None = None) -> str:
        """Send a resume request for ``run_dir`` and follow it; returns the request id.

        ``data``: the run's screen; default: the screen it was trained on in this session,
        else ``default_data()`` (the open screen).
        """
        data = data or self._data_by_run.get(str(Path(run_dir))) or self.default_data()
        params = {"out": str(run_dir)}
        if data:
            params["data"] = str(data)
        request = self.bridge.submit("resume", **params)
        self.follow(request, run_dir, title="Resuming", data=data)
        return request

    def show_run(self, run_dir: str | Path) -> bool:
        """Show a run's curves from its ``metrics.jsonl`` (not while a training is followed).

        Returns False when a live run keeps the view or the folder has no metrics."""
        run = Path(run_dir)
        if self.status in ("queued", "running"):
            return False
        if self.status == "done" and self.run_dir == run:
            return True  # the run just trained: its curves are on show already
        records = read_metrics(run)
        if not records:
            return False
        self.request = None
        self.status = "idle"
        self.run_dir = run
        self.curves.set_records(records)
        self._set_title(f"Run {run.name}: {len(records)} epochs (from its metrics.jsonl)")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("not running")
        self.eta_label.setText("")
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(True)
        return True

    def _ask_show_run(self) -> None:
        start = str(self.run_dir) if self.run_dir else ""
        folder = QFileDialog.getExistingDirectory(self, "Training run folder", start)
        if folder and not self.show_run(folder):
            busy = self.status in ("queued", "running")
            self.append_log("A training is running: its curves stay on show." if busy
                            else f"{folder} has no metrics.jsonl: not a training run.")

    def _ask_save_image(self) -> None:
        name = f"{self.run_dir.name}-curves.png" if self.run_dir else "curves.png"
        start = str((self.run_dir or Path.home()) / name)
        path, _ = QFileDialog.getSaveFileName(self, "Save the curves", start,
                                              "PNG image (*.png)")
        if path:
            try:
                self.curves.save_image(path)
            except OSError as exc:
                self.append_log(str(exc))
            else:
                self.append_log(f"Curves saved to {path}")

    def _run_name(self) -> str:
        return self.run_dir.name if self.run_dir else ""

    def _set_title(self, text: str) -> None:
        """The run's folder name in the title, its full path in the tooltip (a long path
        took three lines of a narrow dock)."""
        self.title.setText(text)
        self.title.setToolTip(f"{text}\n{self.run_dir}" if self.run_dir else text)

    def cancel(self) -> None:
        if self.request and self.status in ("queued", "running"):
            self.bridge.cancel(self.request)
            self.cancel_button.setEnabled(False)
            self.append_log("Cancelling: the run stops at the next step and keeps a checkpoint.")

    def append_log(self, message: str) -> None:
        self.log_view.appendPlainText(message)

    def _ask_resume(self) -> None:
        start = str(self.run_dir) if self.run_dir else ""
        folder = QFileDialog.getExistingDirectory(self, "Resume training run", start)
        if not folder:
            return
        if not is_resumable(folder):
            self.append_log(f"{folder} is not a resumable run (no checkpoints/last.* found).")
            return
        self.resume_requested.emit(folder)
        self.resume(folder)

    # -- events ----------------------------------------------------------------------
    def _on_event(self, event: dict) -> None:
        if self.request is None or event.get("request") != self.request:
            return
        name = event.get("event")
        if name == "started":
            self.status = "running"
            self._started_at = time.monotonic()
            self._set_title(f"Training: {self._run_name()}")
        elif name == "progress":
            self.status = "running"
            self._on_progress(event)
        elif name == "metrics":
            record = event.get("record", event)
            self.curves.add_record(record)
            self.append_log(self._metrics_line(record))
        elif name == "log":
            level = str(event.get("level", "info"))
            prefix = "" if level in ("info", "INFO") else f"[{level}] "
            self.append_log(prefix + str(event.get("message", "")))
        elif name == "result":
            self.last_result = dict(event.get("result") or {})
            if self.last_result.get("cancelled"):
                self._end("cancelled", "Cancelled; the run can be resumed.")
            else:
                self._end("done", "Training finished.")
                self.training_done.emit(self.last_result)
        elif name == "error":
            message = str(event.get("message", "unknown error"))
            suggestion = event.get("suggestion")
            text = f"Error ({event.get('kind', 'error')}): {message}"
            if suggestion:
                text += f"\nSuggestion: {suggestion}"
            self._end("failed", text)
        elif name == "cancelled":
            self._end("cancelled", "Cancelled; the run can be resumed.")
        elif name == "finished" and self.status in ("queued", "running"):
            status = str(event.get("status", "done"))
            if status in ("cancelled", "failed", "error"):
                self._end("cancelled" if status == "cancelled" else "failed", f"Ended: {status}.")
            else:
                self._end("done", "Training finished.")

    def _on_progress(self, event: dict) -> None:
        done, total = event.get("done"), event.get("total")
        if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * min(max(done / total, 0.0), 1.0)))
            stage = event.get("stage") or ""
            if event.get("repeats", 1) > 1:  # model.repeats: which training of how many
                stage = f"{stage}, repeat {event.get('repeat')} of {event['repeats']}"
            self.progress_bar.setFormat(f"{stage} {int(done)}/{int(total)} (%p%)".strip())
        eta = format_eta(event.get("eta_s"))
        self.eta_label.setText(f"ETA {eta}" if eta else "")

    @staticmethod
    def _metrics_line(record: dict) -> str:
        repeat = record.get("repeat")
        parts = [f"repeat {repeat}" if repeat else "",
                 f"epoch {record.get('epoch', '?')}", str(record.get("stage", ""))]
        keys = ("train_loss", "val_loss", "val_acc_student_balanced", "val_acc_ensemble_balanced")
        for key in keys:
            value = record.get(key)
            if isinstance(value, int | float):
                parts.append(f"{key}={value:.4g}")
        return "  ".join(p for p in parts if p)

    def _end(self, status: str, message: str) -> None:
        if self.status in ("done", "cancelled", "failed"):
            return
        self.status = status
        self.append_log(message)
        self._set_title(f"{message} {self._run_name()}")
        self.progress_bar.setRange(0, 1000)
        if status == "done":
            self.progress_bar.setValue(1000)
            self.progress_bar.setFormat("finished")
        else:  # the bar keeps where it stopped
            self.progress_bar.setFormat(f"{status} at %p%")
        self.eta_label.setText("")
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(True)

    def _on_engine_state(self, state: str) -> None:
        if state == STOPPED and self.status in ("queued", "running"):  # restarted
            resumable = self.run_dir is not None and is_resumable(self.run_dir)
            hint = " Resume… continues it from its last checkpoint." if resumable else ""
            self._end("failed", "Stopped: the engine was restarted." + hint)

    def _on_engine_died(self, info: dict) -> None:
        if self.status in ("queued", "running"):
            resumable = self.run_dir is not None and is_resumable(self.run_dir)
            hint = " Restart the engine, then Resume." if resumable else ""
            self._end("failed", str(info.get("message", "The engine stopped.")) + hint)
