"""Workflow widgets on a tiny synthetic screen: curves, train dialog, training view, models, export.

No engine process here (see test_engine_bridge.py and test_workflow_e2e.py for that): the
widgets are driven through the bridge's real Qt signals with engine-shaped events.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtGui import QImage

from deepnoise_app.engine import EngineBridge
from deepnoise_app.workflow.curves import ACC_SERIES, LOSS_SERIES, CurvesWidget, legend_entries
from deepnoise_app.workflow.export_dialog import ExportDialog, existing_outputs, report_plates
from deepnoise_app.workflow.model_panel import (
    ModelPanel,
    as_description,
    describe_rows,
    fit_problem,
    summary,
)
from deepnoise_app.workflow.score_panel import ScorePanel
from deepnoise_app.workflow.train_dialog import TrainDialog, toml_value
from deepnoise_app.workflow.training_view import TrainingView, format_eta, read_metrics

pytestmark = pytest.mark.gui
SHOTS = os.environ.get("DEEPNOISE_SCREENSHOTS")  # set to keep screenshots for a look


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.synthetic import make_demo

    root = make_demo(
        tmp_path_factory.mktemp("demo") / "screen", image_size=32, sirnas_per_plate=4,
        plates_per_experiment=2, sites=1, channels=3, missing_wells=0,
    )
    return open_screen(root)


class _InProcessEngine:
    """Answers the dialog's quick requests with the engine's own handlers, in-process
    (what ``EngineBridge.ask`` gets from the engine process)."""

    def ask(self, type: str, timeout: float = 30.0, **params):
        from deepnoise_engine.serve.handlers import QUICK_HANDLERS
        from deepnoise_engine.serve.protocol import check_params

        return QUICK_HANDLERS[type](check_params(type, params))


ENGINE = _InProcessEngine()


def default_validation(screen) -> set[str]:
    """The engine's default split of ``screen`` (its ``default_split`` answer)."""
    return set(ENGINE.ask("default_split", data=str(screen.root))["validation_experiments"])


def _image(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, dtype=np.uint8, count=img.sizeInBytes())
    return arr.reshape(img.height(), img.bytesPerLine() // 4, 4)[:, : img.width(), :3].copy()


def _record(epoch: int, stage: str = "shared", **extra) -> dict:
    base = {
        "epoch": epoch, "stage": stage, "train_loss": 3.0 / epoch, "val_loss": 3.5 / epoch,
        "val_acc_student_raw": 0.1 * epoch, "val_acc_student_balanced": 0.12 * epoch,
        "val_acc_teacher_raw": 0.11 * epoch, "val_acc_teacher_balanced": 0.13 * epoch,
    }
    base.update(extra)
    return base


def _save(widget, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(SHOTS) / name))


# -- curves ---------------------------------------------------------------------------------
def test_curves_draw_points_from_metrics(qtbot):
    curves = CurvesWidget()
    qtbot.addWidget(curves)
    curves.resize(640, 260)
    blank = _image(curves)
    curves.add_record(_record(1))
    curves.add_record({"record": _record(2)})  # a metrics event shape works too
    curves.add_record(_record(3, stage="finetune:HEPG2", val_loss=None,
                              val_acc_teacher_raw=float("nan")))
    assert curves.series("train_loss") == [(1.0, 3.0), (2.0, 1.5), (3.0, 1.0)]
    assert [x for x, _ in curves.series("val_loss")] == [1.0, 2.0]  # None skipped
    assert len(curves.series("val_acc_teacher_raw")) == 2  # NaN skipped
    assert curves.series("val_acc_ensemble_raw") == []  # absent: not drawn
    assert curves.stage_starts() == [(1.0, "shared"), (3.0, "finetune:HEPG2")]
    drawn = _image(curves)
    # a second independent repeat starts its own shared stage, marked as such, and no
    # line joins its first epoch to the last epoch of the first repeat
    curves.add_record(_record(1, repeat=2))
    assert curves.stage_starts()[-1] == (4.0, "repeat 2: shared")
    assert curves.repeat_starts() == {4.0}
    joined = curves.loss.curves["train_loss"].opts["connect"]
    assert list(joined) == [True, True, False, False]
    assert "repeat 2" in TrainingView._metrics_line(_record(1, repeat=2))
    # the curve colours appear: train loss blue, teacher orange
    assert (np.abs(drawn.astype(int) - blank.astype(int)).sum(axis=2) > 60).sum() > 200
    blue = (drawn[..., 0] > 150) & (drawn[..., 1] < 150) & (drawn[..., 2] < 80)  # BGR
    orange = (drawn[..., 2] > 220) & (drawn[..., 1] > 100) & (drawn[..., 0] < 60)
    assert blue.sum() > 20 and orange.sum() > 20
    _save(curves, "curves.png")
    curves.clear()
    assert curves.point_count() == 0


def test_format_eta_and_read_metrics(tmp_path):
    assert format_eta(None) == "" and format_eta(12) == "12 s"
    assert format_eta(125) == "2 min 5 s" and format_eta(7300) == "2 h 1 min"
    lines = [json.dumps(_record(1)), "{not json", json.dumps(_record(2))]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]


# -- train dialog ---------------------------------------------------------------------------
def test_train_dialog_defaults_and_request(qtbot, screen, tmp_path):
    dialog = TrainDialog(screen, devices=[{"name": "CPU", "type": "cpu"}], runs_dir=tmp_path,
                         engine=ENGINE)
    qtbot.addWidget(dialog)
    roles = dialog.experiment_roles()
    # one labelled experiment per cell type validates; unlabelled = experiments without labels
    assert {e for e, r in roles.items() if r == "validation"} == default_validation(screen)
    assert len(default_validation(screen)) == len(screen.cell_types())
    # the note names the default split, and says when the choice differs from it
    note = dialog.split_note.text()
    assert f"the default: {', '.join(sorted(default_validation(screen)))} validate" in note
    first_val = sorted(default_validation(screen))[0]
    dialog.set_role(first_val, "train")
    assert "(default: " in dialog.split_note.text()
    dialog.set_role(first_val, "validation")
    for name, exp in screen.experiments.items():
        assert (roles[name] == "unlabelled") == (not exp.labelled)
    assert dialog.preset_combo.currentText() == "tiny"
    assert dialog.repeats_spin.value() == 2  # the preset's independent repeats
    assert dialog.position_check.isChecked()  # and its plate-position correction
    assert dialog.validate() == []
    params = dialog.request_params()
    assert params["data"] == str(screen.root) and params["preset"] == "tiny"
    assert Path(params["out"]).parent == tmp_path
    # the overrides are valid engine configuration (checked by the engine's own parser)
    config = pytest.importorskip("deepnoise_engine.train.config")
    dialog.ensemble_check.setChecked(True)
    dialog.model2_combo.setCurrentText("xception_wide")
    dialog.epochs_spin.setValue(3)
    dialog.repeats_spin.setValue(1)
    dialog.position_check.setChecked(False)
    dialog.norm_combo.setCurrentText("experiment")
    dialog.finetune_check.setChecked(False)
    cfg = config.resolve("tiny", overrides=dialog.overrides())
    assert cfg["model"]["names"] == [dialog.model1_combo.currentText(), "xception_wide"]
    assert cfg["model"]["epochs"] == 3 and cfg["model"]["repeats"] == 1
    assert cfg["data"]["position_correction"] == "none"
    assert cfg["data"]["normalisation"] == "experiment"
    assert cfg["finetune"]["enabled"] is False
    assert sorted(cfg["data"]["validation_experiments"]) == sorted(default_validation(screen))
    # settings the engine refuses are named by their key
    assert "model.epochs" in dialog.rules.config_problem("tiny", ["model.epochs=many"])
    _save(dialog, "train_dialog.png")


def test_train_dialog_refuses_bad_setups(qtbot, screen, tmp_path):
    dialog = TrainDialog(screen, runs_dir=tmp_path, engine=ENGINE)
    qtbot.addWidget(dialog)
    val = sorted(default_validation(screen))
    hepg2_val = next(e for e in val if e.startswith("HEPG2"))

    # a cell type whose labelled experiments all validate
    for name, exp in screen.experiments.items():
        if exp.cell_type == "HEPG2" and exp.labelled:
            dialog.set_role(name, "validation")
    assert any("HEPG2 has no training experiment" in p for p in dialog.validate())
    # nothing left to train on
    for name, exp in screen.experiments.items():
        if exp.labelled:
            dialog.set_role(name, "validation")
    assert any("No labelled experiment is set to 'train'" in p for p in dialog.validate())
    dialog.set_role(hepg2_val, "train")
    with pytest.raises(ValueError):
        dialog.set_role(hepg2_val, "unlabelled")  # a labelled experiment is never unlabelled

    # reset: a valid split again
    for name in val:
        dialog.set_role(name, "validation")
    for name, exp in screen.experiments.items():
        if exp.labelled and name not in val:
            dialog.set_role(name, "train")
    assert dialog.validate() == []

    # run folder exists and is not a resumable run
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    dialog.out_edit.setText(str(used))
    assert any("not a resumable run" in p for p in dialog.validate())
    # a resumable run folder: pointed to Resume
    (used / "config.toml").write_text("[model]\n")
    (used / "checkpoints").mkdir()
    (used / "checkpoints" / "last.json").write_text("{}")
    assert any("resumable run" in p and "resume" in p for p in dialog.validate())
    dialog.out_edit.setText("")
    assert any("Choose a run folder" in p for p in dialog.validate())
    dialog.out_edit.setText(str(tmp_path / "fresh"))

    # missing screen folder, same backbones twice, CUDA without a CUDA device
    dialog.data_edit.setText(str(tmp_path / "nowhere"))
    dialog.ensemble_check.setChecked(True)
    dialog.model2_combo.setCurrentText(dialog.model1_combo.currentText())
    dialog.device_combo.addItem("cuda", "cuda")
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cuda"))
    problems = dialog.validate()
    assert any("Screen folder not found" in p and "nowhere" in p for p in problems)
    assert any("must be different backbones" in p for p in problems)
    assert any("no CUDA device" in p for p in problems)
    # accept() keeps the dialog open and shows why
    dialog.accept()
    assert dialog.result() == 0 and "Screen folder not found" in dialog.error_label.text()


def test_train_dialog_without_labels(qtbot, screen, tmp_path):
    from deepnoise_engine.screen.model import Screen

    unlabelled = Screen(root=screen.root, layout=screen.layout, channels=screen.channels,
                        image_size=screen.image_size, name="x")
    unlabelled.experiments = {n: e for n, e in screen.experiments.items() if not e.labelled}
    dialog = TrainDialog(unlabelled, runs_dir=tmp_path, engine=ENGINE)
    qtbot.addWidget(dialog)
    assert any("no labelled experiment" in p for p in dialog.validate())


def test_toml_values():
    assert toml_value(True) == "true" and toml_value(3) == "3" and toml_value(0.5) == "0.5"
    assert toml_value(["a", "b"]) == '["a", "b"]' and toml_value("plate") == '"plate"'


# -- training view --------------------------------------------------------------------------
def test_training_view_follows_its_request(qtbot, tmp_path):
    bridge = EngineBridge()
    view = TrainingView(bridge)
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.follow("r7", tmp_path / "run")
    assert view.status == "queued" and view.cancel_button.isEnabled()
    emit = bridge.event.emit  # the bridge's real signal, engine-shaped events
    emit({"event": "started", "request": "r7", "job": "j1"})
    emit({"event": "progress", "request": "r7", "job": "j1", "stage": "shared",
          "done": 25, "total": 100, "eta_s": 90})
    assert view.status == "running"
    assert view.progress_bar.value() == 250 and view.eta_label.text() == "ETA 1 min 30 s"
    # independent repeats (model.repeats): the bar says which training it is in
    emit({"event": "progress", "request": "r7", "job": "j1", "stage": "shared",
          "done": 60, "total": 200, "eta_s": 90, "repeat": 1, "repeats": 2})
    assert view.progress_bar.text().startswith("shared, repeat 1 of 2 60/200")
    for epoch in (1, 2, 3):
        emit({"event": "metrics", "request": "r7", "job": "j1", "record": _record(epoch)})
    emit({"event": "metrics", "request": "other", "job": "j2", "record": _record(9)})
    emit({"event": "log", "request": "r7", "job": "j1", "level": "info", "message": "hello log"})
    assert len(view.curves.records) == 3  # another request's metrics are not ours
    assert "hello log" in view.log_view.toPlainText()
    _save(view, "training_view.png")
    emit({"event": "error", "request": "r7", "job": "j1", "kind": "out_of_memory",
          "message": "CUDA out of memory", "suggestion": "use a smaller batch"})
    assert view.status == "failed"
    assert "smaller batch" in view.log_view.toPlainText()
    assert not view.cancel_button.isEnabled() and view.resume_button.isEnabled()


# -- models ---------------------------------------------------------------------------------
def test_model_fit_check_and_description(qtbot, screen):
    # what the engine's describe_model answers (the contract's ModelDescription)
    desc = {"kind": "run", "path": "/runs/good", "architecture": ["xception_tiny"],
            "channels": [1, 2, 3], "classes": screen.classes(), "normalisation": "plate",
            "image_size": 32, "validation_accuracy": 0.75, "cell_types": ["HEPG2", "U2OS"]}
    assert fit_problem(as_description(desc), screen) is None
    rows = dict(describe_rows(as_description(desc)))
    assert rows["Architecture"] == "xception_tiny" and rows["Validation accuracy"] == "0.75"
    assert rows["Class names"].startswith(", ".join(screen.classes()[:3]))
    six = {**desc, "channels": [1, 2, 3, 4, 5, 6]}
    assert "reads 6 channels but the screen has 3" in fit_problem(as_description(six), screen)
    other = {**desc, "classes": ["sirna_a", "sirna_b"]}
    assert "trained on another kind of screen" in fit_problem(as_description(other), screen)

    class _State:  # a plain holder of the open screen (AppState needs no more here)
        def __init__(self, screen):
            self.screen = screen
            self.models: list = []

        def set_models(self, models):
            self.models = models

    state = _State(screen)
    panel = ModelPanel(EngineBridge(), state)
    qtbot.addWidget(panel)
    assert not panel.add_description("/runs/six", six)
    assert "Refused six" in panel.message.text() and panel.models == []
    assert panel.add_description("/runs/good", desc)
    assert panel.model_paths() == ["/runs/good"] and state.models[0]["path"] == "/runs/good"
    assert panel.tree.topLevelItem(0).childCount() >= 5


class _Holder:
    """A plain holder of the open screen and the loaded models (AppState needs no more)."""

    def __init__(self, screen):
        self.screen = screen
        self.models: list = []

    def set_models(self, models):
        self.models = models


def _dead_engine_bridge() -> EngineBridge:
    """A bridge whose engine process exits at once (a real subprocess, a real death)."""
    import sys

    return EngineBridge(command=[sys.executable, "-c", "import sys; sys.exit(3)"])


def test_model_panel_never_stays_reading(qtbot, screen, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    panel = ModelPanel(_dead_engine_bridge(), _Holder(screen))
    qtbot.addWidget(panel)
    assert panel.load(run) is not None
    text = panel.message.text()
    assert "Reading run" in text and "waiting for the engine" in text
    assert panel.load(run) is None  # asked already: no second request
    # the engine dies before answering: the panel says so instead of "Reading run…" forever
    qtbot.waitUntil(lambda: not panel.loading, timeout=30_000)
    assert "Could not read run" in panel.message.text() and "engine stopped" in panel.message.text()


def test_model_panel_summary_and_replace(qtbot, screen, tmp_path):
    desc = {"architecture": ["xception_tiny"], "classes": screen.classes(), "channels": [1, 2, 3],
            "classes_count": len(screen.classes()), "normalisation": "plate",
            "validation_accuracy": 0.4}
    line = summary(as_description(desc))
    assert line == f"xception_tiny, {len(screen.classes())} classes, norm plate, val. acc. 40.0%"
    state = _Holder(screen)
    panel = ModelPanel(_dead_engine_bridge(), state)
    qtbot.addWidget(panel)
    assert panel.add_description("/runs/a", desc)
    assert panel.tree.topLevelItem(0).text(1) == line and line in panel.message.text()
    assert panel.add_description("/runs/b", desc)
    assert "2 models loaded: scoring uses their ensemble" in panel.message.text()
    # a freshly trained run replaces the loaded models (no silent ensemble with old ones)
    run = tmp_path / "new-run"
    run.mkdir()
    panel.replace_with(run)
    assert panel.models == [] and state.models == []
    assert "replaces a, b" in panel.message.text()
    qtbot.waitUntil(lambda: not panel.loading, timeout=30_000)
    # once described, the message still says which models the new one replaced
    assert panel.add_description(str(run), desc)
    assert "It replaces a, b." in panel.message.text()


def test_demo_line_goes_with_the_demo_screen(qtbot, screen, tmp_path):
    from deepnoise_app.state import AppState
    from deepnoise_app.workflow import WorkflowDock

    state = AppState()
    dock = WorkflowDock(state=state, data_dir=tmp_path, autostart=False)
    qtbot.addWidget(dock)
    dock._demo_status("Demo: predictions for 24 plate(s) loaded")
    assert not dock.demo_label.isHidden()
    state.set_screen(screen)  # not the demo screen: its line goes
    assert dock.demo_label.isHidden() and dock.demo_label.text() == ""
    dock.bridge.shutdown(timeout=1.0)


def test_score_panel_names_its_models(qtbot, screen, tmp_path):
    models: list[str] = []
    panel = ScorePanel(EngineBridge(), _Holder(screen), lambda: list(models),
                       scores_dir=tmp_path)
    qtbot.addWidget(panel)
    assert "no model loaded" in panel.models_label.text()
    assert "Load a model" in " ".join(panel.problems())
    models[:] = ["/runs/demo-run-v1"]
    panel.show_models()
    assert panel.models_label.text() == "With: demo-run-v1"
    models.append("/runs/other")
    panel.show_models()
    assert "ensemble of 2" in panel.models_label.text()


def test_curves_legend_is_compact_and_fits_a_dock(qtbot):
    acc = legend_entries(list(ACC_SERIES))
    assert [e[0] for e in acc] == ["student", "teacher", "ensemble", "raw", "balanced"]
    assert acc[-2][2] and not acc[-1][2]  # raw dashed, balanced solid
    assert [e[0] for e in legend_entries(list(LOSS_SERIES))] == ["train loss", "validation loss"]
    curves = CurvesWidget()
    qtbot.addWidget(curves)
    curves.resize(400, 230)  # the docked Training tab: flat -> panels side by side
    assert curves.side_by_side()
    curves.resize(380, 600)  # tall and narrow -> stacked
    assert not curves.side_by_side()


def test_restart_never_leaves_a_view_waiting(qtbot, screen, tmp_path):
    """A restart drops the engine's queue silently: every view must stop waiting."""
    bridge = EngineBridge()
    view = TrainingView(bridge)
    score = ScorePanel(bridge, _Holder(screen), lambda: ["/runs/a"], scores_dir=tmp_path)
    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "HEPG2-01_Plate1.csv").write_text("id_code,well\n")
    export = ExportDialog(bridge, scores, out_dir=tmp_path / "out")
    for widget in (view, score, export):
        qtbot.addWidget(widget)
    view.follow("r1", tmp_path / "run")
    score.request = "r2"
    score.score_button.setEnabled(False)
    export.request = "r3"
    export.export_button.setEnabled(False)
    bridge.state_changed.emit("stopped")  # the bridge's real signal, as restart() sends it
    assert view.status == "failed" and "engine was restarted" in view.log_view.toPlainText()
    assert view.resume_button.isEnabled() and not view.cancel_button.isEnabled()
    assert score.request is None and score.score_button.isEnabled()
    assert "engine was restarted" in score.status.text()
    assert export.request is None and export.export_button.isEnabled()
    assert "engine was restarted" in export.status.text()


# -- export ---------------------------------------------------------------------------------
def test_export_dialog_lists_plates_and_keeps_files(qtbot, tmp_path):
    scores = tmp_path / "scores"
    scores.mkdir()
    for name in ("HEPG2-01_Plate1.csv", "HEPG2-01_Plate2.csv", "U2OS-03_Plate1.csv"):
        (scores / name).write_text("id_code,well\n")
    (scores / "summary.json").write_text("{}")
    assert report_plates(scores) == [("HEPG2-01", 1), ("HEPG2-01", 2), ("U2OS-03", 1)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "HEPG2-01_Plate2.csv").write_text("precious")
    assert existing_outputs(out, [("HEPG2-01", 2)], False, False) == [out / "HEPG2-01_Plate2.csv"]
    assert existing_outputs(out, [("HEPG2-01", 1)], False, False) == []

    bridge = EngineBridge()
    dialog = ExportDialog(bridge, scores, out_dir=out)
    qtbot.addWidget(dialog)
    assert dialog.plate_list.count() == 3 and len(dialog.chosen_plates()) == 3
    questions: list[str] = []
    dialog.confirm = lambda text: questions.append(text) or False  # the user says No
    assert dialog.export() is None
    assert "HEPG2-01_Plate2.csv" in questions[0]
    assert (out / "HEPG2-01_Plate2.csv").read_text() == "precious"
    assert "kept" in dialog.status.text()
    dialog.set_chosen([("U2OS-03", 1)])
    assert dialog.chosen_plates() == [("U2OS-03", 1)]
    dialog.out_edit.setText(str(scores))
    assert dialog.export() is None and "other than the score folder" in dialog.status.text()
    # a result event lists the written files
    dialog.request, dialog.export_out = "r1", out
    bridge.event.emit({"event": "result", "request": "r1", "job": "j",
                       "result": {"out": str(out),
                                  "files": [str(out / "a.csv"), str(out / "b.png")]}})
    assert dialog.written == [str(out / "a.csv"), str(out / "b.png")]
    assert dialog.files_view.toPlainText() == "a.csv\nb.png"  # names; the folder is said once
    assert str(out) in dialog.status.text() and "Wrote 2 file(s)" in dialog.status.text()


def test_workflow_modules_never_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, deepnoise_app.engine, deepnoise_app.workflow\n"
        "heavy = ('torch', 'timm', 'torchvision')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
