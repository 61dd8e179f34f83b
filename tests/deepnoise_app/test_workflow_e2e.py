"""The workflow dock with the real engine process on a tiny synthetic screen (32 px, 3 channels).

Train ``tiny`` from the dialog, watch the curves, score, toggle raw/balanced, export and read
the CSVs back; cancel mid-training; kill the engine mid-training and restart it; the demo
flow trains, scores, caches and reloads the demo predictions.
"""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
from ui_driver import click

pytest.importorskip("deepnoise_engine.serve.client")
pytest.importorskip("deepnoise_engine.train.loop")
pytest.importorskip("deepnoise_engine.workflows.score")

from deepnoise_app.engine import READY
from deepnoise_app.models.training_runs import is_resumable
from deepnoise_app.state import AppState
from deepnoise_app.workflow import WorkflowDock, install_workflow
from deepnoise_app.workflow.demo_flow import DEMO_OVERRIDES, DEMO_PRESET, DEMO_SCREEN, DemoFlow

pytestmark = [pytest.mark.gui, pytest.mark.slow]
TINY = {"image_size": 32, "sirnas_per_plate": 4, "plates_per_experiment": 2, "sites": 1,
        "channels": 3, "missing_wells": 0}
SHOTS = os.environ.get("DEEPNOISE_SCREENSHOTS")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the engine process
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setenv("DEEPNOISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DEEPNOISE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def screen_root(tmp_path_factory):
    from deepnoise_engine.screen.synthetic import make_demo

    return make_demo(tmp_path_factory.mktemp("e2e") / "screen", **TINY)


@pytest.fixture
def dock(qtbot, screen_root, tmp_path):
    from deepnoise_engine.screen.open import open_screen

    state = AppState()
    state.set_screen(open_screen(screen_root))
    dock = WorkflowDock(state=state, data_dir=tmp_path / "data", autostart=True)
    qtbot.addWidget(dock)
    dock.resize(520, 760)
    dock.show()  # the buttons are clicked as a user does
    qtbot.waitUntil(lambda: dock.bridge.state == READY, timeout=60_000)
    yield dock
    dock.bridge.shutdown(timeout=2.0)


def _train(dock, epochs: int, **settings) -> str:
    dialog = dock.open_train_dialog(exec_=False)
    dialog.epochs_spin.setValue(epochs)
    dialog.finetune_check.setChecked(settings.get("finetune", False))
    dialog.accept()  # validates, then the dock sends the request
    assert dialog.result() == 1, dialog.error_label.text()
    assert dock.training_view.request is not None
    return dialog.request_params()["out"]


def test_train_score_export(qtbot, dock, tmp_path):
    state = dock.state
    run_dir = _train(dock, epochs=2)
    view = dock.training_view
    assert dock.tabs.currentWidget().widget() is view
    qtbot.waitUntil(lambda: view.curves.point_count() > 0, timeout=120_000)
    qtbot.waitUntil(lambda: view.status == "done", timeout=120_000)
    # two epochs in each of tiny's two independent repeats
    assert [(r["repeat"], r["epoch"]) for r in view.curves.records] == [(1, 1), (1, 2),
                                                                        (2, 1), (2, 2)]
    assert view.curves.series("train_loss") and view.curves.series("val_acc_student_balanced")
    assert view.progress_bar.value() == view.progress_bar.maximum()
    if SHOTS:
        view.grab().save(os.path.join(SHOTS, "training_view_real.png"))
    # the finished run is loaded as a model at once
    qtbot.waitUntil(lambda: bool(dock.model_panel.models), timeout=30_000)
    desc = dock.model_panel.models[0]
    assert desc["path"] == run_dir and desc["image_size"] == 32

    # score two plates of one experiment
    panel = dock.score_panel
    panel.tta_combo.setCurrentText("1")
    exp = sorted(state.screen.experiments)[0]
    panel.select_plates(None)
    assert panel.chosen_plates() is None  # the whole screen: no plates parameter
    assert "plates" not in panel.request_params()
    panel.select_plates([f"{exp}:1", f"{exp}:2"])
    assert panel.chosen_plates() == [f"{exp}:1", f"{exp}:2"]
    panel.out_edit.setText(str(tmp_path / "scores"))
    assert panel.score() is not None
    qtbot.waitUntil(lambda: bool(state.predictions), timeout=120_000)
    assert set(state.predictions) == {f"{exp}/1", f"{exp}/2"}
    assert "Scored 2 plate(s)" in panel.status.text()
    # the next Score goes to a new folder (no overwrite question for a second run)
    assert panel.out_dir == tmp_path / "scores"
    assert panel.out_edit.text() != str(tmp_path / "scores")
    if SHOTS:
        dock.tabs.setCurrentIndex(0)
        dock.grab().save(os.path.join(SHOTS, "workflow_dock.png"))
    plate = state.screen.plate(exp, 1)
    frame = state.predictions[f"{exp}/1"]
    assert set(frame["well"]) == set(plate.wells)
    # raw / balanced toggle drives the state
    panel.raw_radio.setChecked(True)
    assert state.prediction_mode == "raw"
    state.set_prediction_mode("balanced")
    assert panel.balanced_radio.isChecked()

    # export one plate with the submission and a figure; read the CSVs back
    dialog = dock.open_export_dialog(exec_=False)
    qtbot.addWidget(dialog)
    dialog.set_chosen([(exp, 1)])
    dialog.figures_check.setChecked(True)
    out = tmp_path / "export"
    dialog.out_edit.setText(str(out))
    assert dialog.export() is not None
    qtbot.waitUntil(lambda: bool(dialog.written), timeout=60_000)
    names = sorted(os.path.basename(p) for p in dialog.written)
    assert names == sorted([f"{exp}_Plate1.csv", f"{exp}_Plate1.png", "submission.csv"])
    report = pd.read_csv(out / f"{exp}_Plate1.csv", dtype=str)
    assert set(report["well"]) == set(plate.wells)
    assert {"sirna", "confidence", "sirna_raw", "prob_raw"} <= set(report.columns)
    submission = pd.read_csv(out / "submission.csv", dtype=str)
    assert list(submission.columns) == ["id_code", "sirna"]
    assert set(submission["id_code"]) <= set(report["id_code"])
    # a second export asks before overwriting; saying yes replaces the files
    asked: list[str] = []
    dialog.confirm = lambda text: asked.append(text) or True
    assert dialog.export() is not None
    assert asked and f"{exp}_Plate1.csv" in asked[0]
    qtbot.waitUntil(lambda: bool(dialog.written), timeout=60_000)
    assert "Wrote 3 file(s)" in dialog.status.text()


def test_cancel_mid_training(qtbot, dock):
    run_dir = _train(dock, epochs=200)
    view = dock.training_view
    qtbot.waitUntil(lambda: view.status == "running", timeout=60_000)
    qtbot.waitUntil(lambda: view.progress_bar.maximum() == 1000, timeout=60_000)
    click(qtbot, view.cancel_button)
    qtbot.waitUntil(lambda: view.status == "cancelled", timeout=30_000)
    assert "resumed" in view.log_view.toPlainText()
    assert view.resume_button.isEnabled() and not view.cancel_button.isEnabled()
    assert is_resumable(run_dir)
    # resume from the view, then cancel again: the engine keeps serving
    request = view.resume(run_dir)
    qtbot.waitUntil(lambda: view.status != "queued", timeout=60_000)
    assert view.status == "running", view.log_view.toPlainText()
    # Restart engine asks first while a job runs; "No" keeps the run going
    asked: list[str] = []
    dock.confirm = lambda text: asked.append(text) or False
    assert not dock.restart_engine()
    assert "stops the running resume" in asked[0] and view.status == "running"
    view.cancel()
    qtbot.waitUntil(lambda: view.status == "cancelled", timeout=30_000)
    assert view.request == request and dock.bridge.state == READY


def test_engine_killed_mid_training_then_restart(qtbot, dock):
    _train(dock, epochs=200)
    view = dock.training_view
    qtbot.waitUntil(lambda: view.status == "running", timeout=60_000)
    os.kill(dock.bridge.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: dock.bridge.state == "dead", timeout=5_000)
    assert "SIGKILL" in dock.engine_label.text()
    assert view.status == "failed" and "SIGKILL" in view.log_view.toPlainText()
    assert dock.restart_button.isEnabled() and dock.train_button.isEnabled()
    # the UI stays usable: the train dialog opens and validates
    dialog = dock.open_train_dialog(exec_=False)
    qtbot.addWidget(dialog)
    assert dialog.validate() == []
    click(qtbot, dock.restart_button)
    qtbot.waitUntil(lambda: dock.bridge.state == READY, timeout=60_000)
    assert "Engine ready" in dock.engine_label.text()
    events: list[dict] = []
    dock.bridge.event.connect(events.append)
    hello = dock.bridge.submit("hello")
    qtbot.waitUntil(lambda: any(e["request"] == hello for e in events), timeout=10_000)


def test_demo_flow_trains_scores_caches_and_reloads(
    qtbot, tmp_path, make_napari_viewer, monkeypatch
):
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.synthetic import make_demo

    data_dir = tmp_path / "data"
    root = make_demo(data_dir / DEMO_SCREEN, **TINY)
    viewer = make_napari_viewer()
    state = AppState()
    dock = install_workflow(viewer, state)  # the app's entry point
    try:
        assert dock.data_dir == data_dir  # from DEEPNOISE_DATA_DIR
        state.set_screen(open_screen(root))  # opening the demo screen starts the flow
        assert dock.demo.stage == "training" and dock.demo_label.text().startswith("Demo:")
        # a first-time user sees the demo's training (curves, log) in the Training tab
        assert dock.training_view.request == dock.demo.request
        assert dock.training_view.status == "queued"
        qtbot.waitUntil(lambda: dock.demo.stage in ("done", "failed"), timeout=180_000)
        assert dock.demo.stage == "done", dock.demo.status
        assert len(state.predictions) == len(list(state.screen.plates()))
        assert (data_dir / "demo-predictions-v2").is_dir()
        assert "loaded" in dock.demo_label.text()
        assert dock.training_view.status == "done" and dock.training_view.curves.records
        # the demo run is loaded as a model: scoring again is one click
        qtbot.waitUntil(lambda: bool(dock.model_panel.models), timeout=30_000)
        assert dock.model_panel.model_paths() == [str(dock.demo.run_dir)]
        assert dock.model_panel.message.text().startswith("Loaded demo-run-v2: ")
        assert dock.score_panel.models_label.text() == "With: demo-run-v2"
    finally:
        dock.bridge.shutdown(timeout=2.0)
    # a later start loads the cache at once, with no engine job
    state2 = AppState()
    state2.set_screen(open_screen(root))
    flow = DemoFlow(dock.bridge, state2, data_dir=data_dir)
    assert flow.check() == "loaded" and len(state2.predictions) == len(state.predictions)
    # switched off by the environment
    monkeypatch.setenv("DEEPNOISE_NO_AUTO_DEMO", "1")
    assert DemoFlow(dock.bridge, state2, data_dir=data_dir).check() == "skipped"


def test_the_demo_learns_its_pseudo_labels_late_in_its_short_schedule():
    """The shortened demo keeps tiny's proportions: pseudo labels from 5/8 of the shared
    epochs (from epoch 5 the demo's balanced calls fell from 92 % to 83 %)."""
    from deepnoise_engine.train.config import resolve

    cfg = resolve(DEMO_PRESET, overrides=list(DEMO_OVERRIDES))
    epochs, start = cfg["model"]["epochs"], cfg["pseudo_labels"]["start_epoch"]
    assert cfg["pseudo_labels"]["enabled"] and epochs / 2 < start <= epochs
    # within 3 minutes of launch: one training, and no position correction (measured worse
    # on the demo's small experiments)
    assert cfg["model"]["repeats"] == 1 and cfg["data"]["position_correction"] == "none"
