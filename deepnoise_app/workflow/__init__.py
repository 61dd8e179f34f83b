"""The workflow dock: engine status, train, load models, score, export, training view, demo flow.

``install_workflow(viewer, state)`` adds the "DeepNoise workflow" dock to a napari viewer
(the ``deepnoise`` app calls it); ``WorkflowDock`` is also the npe2 widget contribution, so
it works inside a plain ``napari`` (state shared through ``state_for(viewer)``).
Everything long runs in the engine process; this module never imports torch.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from pathlib import Path
from typing import Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QApplication,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.engine import DEAD, READY, STARTING, EngineBridge
from deepnoise_app.models.training_runs import run_complete
from deepnoise_app.napari_compat import main_window
from deepnoise_app.workflow.demo_flow import DemoFlow, user_data_dir
from deepnoise_app.workflow.export_dialog import ExportDialog
from deepnoise_app.workflow.model_panel import ModelPanel
from deepnoise_app.workflow.score_panel import ScorePanel
from deepnoise_app.workflow.train_dialog import TrainDialog
from deepnoise_app.workflow.training_view import TrainingView
from deepnoise_engine.serve.protocol import REQUESTS

__all__ = ["WorkflowDock", "install_workflow"]

_LIVE_BRIDGES: weakref.WeakSet[EngineBridge] = weakref.WeakSet()


@atexit.register
def _stop_engines() -> None:  # never leave an engine process behind
    for bridge in list(_LIVE_BRIDGES):
        with contextlib.suppress(Exception):
            bridge.shutdown(timeout=1.0)


#: Engine requests that are long jobs (a restart stops them).
_JOBS = frozenset(name for name, spec in REQUESTS.items() if spec.job)


def _engine_autostart() -> bool:
    return os.environ.get("DEEPNOISE_NO_ENGINE_AUTOSTART", "").strip() not in ("1", "true", "yes")


def _scrolling(page: QWidget) -> QScrollArea:
    """``page`` in a frameless scroll area: a short dock scrolls instead of squeezing the
    page's boxes over each other, and leaves room to the docks above it."""
    area = QScrollArea()
    area.setWidget(page)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setMinimumHeight(160)
    return area


class WorkflowDock(QWidget):
    """Engine status, Train…, models, scoring, Export… and the training view (tabs)."""

    def __init__(
        self,
        napari_viewer: Any = None,
        state: Any = None,
        bridge: EngineBridge | None = None,
        data_dir: Path | None = None,
        autostart: bool | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if state is None:
            from deepnoise_app.models.state import AppState
            from deepnoise_app.state import state_for

            state = state_for(napari_viewer) if napari_viewer is not None else AppState()
        self.viewer = napari_viewer
        self.state = state
        self.data_dir = Path(data_dir) if data_dir else user_data_dir()
        # not a child of the dock: it must outlive the dock to stop the engine
        self.bridge = bridge or EngineBridge()
        _LIVE_BRIDGES.add(self.bridge)
        bridge_ref = self.bridge
        self.destroyed.connect(lambda *_: bridge_ref.shutdown(timeout=1.0))
        #: Asks the user a yes/no question (replaced in scripted use).
        self.confirm = self._ask

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_engine_row())
        layout.addWidget(self.demo_label)
        layout.addWidget(self._build_tabs(), 1)
        self.demo = DemoFlow(self.bridge, state, data_dir=self.data_dir, parent=self)
        self._connect()
        self._engine_state()

        if autostart is None:
            autostart = _engine_autostart()
        if autostart:  # after the window is up: the engine starts in the background
            QTimer.singleShot(0, self.bridge.start)
        QTimer.singleShot(0, self.demo.check)

    def _build_engine_row(self) -> QHBoxLayout:
        """The engine's status with Restart (and the demo's line under it)."""
        self.engine_label = QLabel("Engine: not started")
        self.engine_label.setWordWrap(True)
        self.restart_button = QPushButton("Restart engine")
        engine_row = QHBoxLayout()
        engine_row.addWidget(self.engine_label, 1)
        engine_row.addWidget(self.restart_button)
        self.demo_label = QLabel("")
        self.demo_label.setWordWrap(True)
        self.demo_label.setVisible(False)
        return engine_row

    def _build_tabs(self) -> QTabWidget:
        """The Workflow tab (Train…, Export…, models, score) and the Training tab."""
        self.train_button = QPushButton("Train…")
        self.train_button.setToolTip("Train a model on the open screen")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write per-plate CSV reports, submission and figures")
        actions = QHBoxLayout()
        actions.addWidget(self.train_button)
        actions.addWidget(self.export_button)

        self.model_panel = ModelPanel(self.bridge, self.state)
        models_box = QGroupBox("Models")
        QVBoxLayout(models_box).addWidget(self.model_panel)
        self.score_panel = ScorePanel(self.bridge, self.state, self.model_panel.model_paths,
                                      scores_dir=self.data_dir / "scores")
        score_box = QGroupBox("Score")
        QVBoxLayout(score_box).addWidget(self.score_panel)

        workflow = QWidget()
        wl = QVBoxLayout(workflow)
        wl.addLayout(actions)
        wl.addWidget(models_box)
        wl.addWidget(score_box)
        wl.addStretch(1)
        self.training_view = TrainingView(self.bridge)
        self.training_view.default_data = self._screen_root
        self.tabs = QTabWidget()
        self.tabs.addTab(_scrolling(workflow), "Workflow")
        self.training_scroll = _scrolling(self.training_view)
        self.tabs.addTab(self.training_scroll, "Training")
        return self.tabs

    def _connect(self) -> None:
        """The panels, the demo, the engine and the state to the dock's slots."""
        self.model_panel.models_changed.connect(self.score_panel.show_models)
        self.model_panel.models_changed.connect(self._show_loaded_run)
        self.demo.status_changed.connect(self._demo_status)
        self.demo.done.connect(self._demo_done)
        self.restart_button.clicked.connect(self.restart_engine)
        self.train_button.clicked.connect(self.open_train_dialog)
        self.export_button.clicked.connect(self.open_export_dialog)
        self.bridge.state_changed.connect(self._engine_state)
        self.bridge.engine_ready.connect(self._engine_state)
        self.bridge.engine_died.connect(self._engine_died)
        self.training_view.training_done.connect(self._training_done)
        if hasattr(self.state, "screen_changed"):
            self.state.screen_changed.connect(self._screen_changed)

    # -- engine status ---------------------------------------------------------------
    def _engine_state(self, *_args: Any) -> None:
        state = self.bridge.state
        if state == READY:
            devices = ", ".join(
                str(d.get("name") or d.get("type")) for d in self.bridge.devices
            ) or "cpu"
            hello = self.bridge.hello
            version = hello.get("engine_version") or hello.get("version") or ""
            self.engine_label.setText(f"Engine ready {version} on {devices}".replace("  ", " "))
            self.engine_label.setStyleSheet("")
        elif state == STARTING:
            self.engine_label.setText("Engine starting…")
            self.engine_label.setStyleSheet("")
        elif state != DEAD:
            self.engine_label.setText("Engine not started (starts when needed)")
        self.restart_button.setEnabled(state != STARTING)

    def restart_engine(self) -> bool:
        """Restart the engine; asks first when that would stop running work."""
        running = sorted(set(self.bridge.open_requests().values()) & _JOBS)
        if running and self.bridge.state == READY:
            what = ", ".join(running)
            if not self.confirm(
                f"Restarting the engine stops the running {what}. A training can be resumed "
                "from its last checkpoint. Restart?"
            ):
                return False
        self.bridge.restart()
        return True

    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(self, "Restart the engine?", text)
        return answer == QMessageBox.StandardButton.Yes

    def _engine_died(self, info: dict) -> None:
        text = str(info.get("message", "The engine stopped."))
        tail = str(info.get("stderr_tail") or "").strip().splitlines()[-3:]
        self.engine_label.setText(text)
        self.engine_label.setToolTip("\n".join(tail))
        self.engine_label.setStyleSheet("color: #c62828;")
        self.restart_button.setEnabled(True)

    def _demo_status(self, text: str) -> None:
        self.demo_label.setVisible(bool(text))
        self.demo_label.setText(text)
        demo = self.demo
        view = self.training_view
        if (
            demo.stage == "training"
            and demo.request is not None
            and view.request != demo.request
            and view.status not in ("queued", "running")
        ):  # a first-time user sees the demo's curves and log in the Training tab
            view.follow(demo.request, demo.run_dir, title="Demo training", data=self._screen_root())

    def _demo_done(self, _predictions: str) -> None:
        if run_complete(self.demo.run_dir) and not self.model_panel.models:
            self.model_panel.load(self.demo.run_dir)  # score again or export in one click

    def _show_loaded_run(self, models: list[dict]) -> None:
        """A loaded run folder's curves go to the Training tab (unless a run is live)."""
        runs = [Path(m["path"]) for m in models if Path(m["path"]).is_dir()]
        if runs:
            self.training_view.show_run(runs[-1])

    def _screen_root(self) -> str | None:
        screen = getattr(self.state, "screen", None)
        return str(screen.root) if screen is not None else None

    def _screen_changed(self, *_args: Any) -> None:
        self.model_panel.message.setText("")
        self.model_panel.drop_unfitting()  # a model of other channels cannot score it
        if self.demo.check() in ("skipped", "running") and self.demo.stage != "training":
            self._demo_status("")  # the demo's line belongs to the demo screen

    # -- actions ---------------------------------------------------------------------
    def open_train_dialog(self, *, exec_: bool = True) -> TrainDialog:
        """Open the train dialog; on Train, send the request and follow it."""
        dialog = TrainDialog(
            screen=getattr(self.state, "screen", None),
            devices=self.bridge.devices,
            runs_dir=self.data_dir / "runs",
            parent=self,
            engine=self.bridge,
        )
        dialog.accepted.connect(lambda: self.start_training(dialog.request_params()))
        if exec_:
            dialog.open()
        return dialog

    def start_training(self, params: dict) -> str:
        """Send a train request and show its progress in the Training tab."""
        request = self.bridge.submit("train", **params)
        self.training_view.follow(request, params.get("out"), data=params.get("data"))
        self.tabs.setCurrentWidget(self.training_scroll)
        return request

    def _training_done(self, _result: dict) -> None:
        run_dir = self.training_view.run_dir
        if run_dir is None or Path(run_dir) == Path(self.demo.run_dir):
            return  # the demo flow loads its run itself once its predictions are shown
        # ready to score in one click, with the new model only (not a silent ensemble
        # with whatever was loaded before)
        self.model_panel.replace_with(run_dir)

    def open_export_dialog(self, *, exec_: bool = True) -> ExportDialog:
        score_dir = getattr(self.state, "score_dir", None) or self.score_panel.out_dir
        dialog = ExportDialog(self.bridge, Path(score_dir) if score_dir else None, parent=self)
        if exec_:
            dialog.open()
        return dialog


def install_workflow(viewer: Any, state: Any) -> WorkflowDock:
    """Add the workflow dock to ``viewer`` (right side) and stop the engine when the app quits."""
    dock = WorkflowDock(viewer, state=state)
    wrapper = viewer.window.add_dock_widget(dock, name="DeepNoise workflow", area="right")
    _tabify_with_plate_map(viewer, wrapper, dock)
    app = QApplication.instance()
    if app is not None:
        bridge = dock.bridge
        app.aboutToQuit.connect(lambda: bridge.shutdown(timeout=2.0))
    return dock


def _dock_named(viewer: Any, title: str) -> Any:
    """napari's dock widget with this title, or None."""
    from qtpy.QtWidgets import QDockWidget

    for candidate in main_window(viewer).findChildren(QDockWidget):
        if candidate.windowTitle() == title:
            return candidate
    return None


def _tabify_with_plate_map(viewer: Any, wrapper: Any, dock: WorkflowDock) -> None:
    """The workflow shares the plate map's place as a tab: stacked under it, a napari-sized
    window showed only ~150 px of the workflow page (the Score box out of sight). The plate
    map comes to the front when a scoring's calls are loaded; Train… and Export… are one
    tab click away."""
    plate_map = _dock_named(viewer, "DeepNoise plate map")
    if plate_map is None:
        return
    try:
        main_window(viewer).tabifyDockWidget(plate_map, wrapper)
    except (AttributeError, RuntimeError):  # napari internals moved: keep them stacked
        return
    QTimer.singleShot(0, plate_map.raise_)  # the plate map first: the screen's overview
    dock.score_panel.scored.connect(lambda _out: plate_map.raise_())
