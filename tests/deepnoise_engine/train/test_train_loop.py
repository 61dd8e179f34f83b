"""End-to-end training runs on a tiny synthetic screen: loss goes down, run folder
contents, metrics keys, refusing to overwrite, cancel + resume give identical weights."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import FAST
from safetensors.torch import load_file

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.workflows.train import RunFolderError, run_training

METRIC_KEYS = {"epoch", "stage", "lr", "train_loss", "train_loss_sup", "train_loss_cons",
               "train_loss_pl", "val_loss", "val_acc_student_raw", "val_acc_student_balanced",
               "val_acc_teacher_raw", "val_acc_teacher_balanced", "val_acc_ensemble_raw",
               "val_acc_ensemble_balanced", "images_per_s", "time_s", "per_model"}
RUN = [*FAST, "model.epochs=2", "finetune.epochs=1", "runtime.progress_every_s=0",
       "pseudo_labels.start_epoch=1"]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict[str, dict]:
    return {p.name: load_file(p) for p in sorted((run / "models").glob("*.safetensors"))}


@pytest.mark.parametrize("cpu_amp", [False, True])
def test_short_run_lowers_the_loss(tiny_screen: Path, tmp_path: Path, cpu_amp: bool) -> None:
    from deepnoise_engine.train.views import cpu_has_native_bf16

    out = tmp_path / "run"
    run_training(tiny_screen, out, overrides=[*FAST, "model.epochs=5", "finetune.enabled=false",
                                              "mean_teacher.enabled=false",
                                              "pseudo_labels.enabled=false",
                                              f"runtime.cpu_amp={str(cpu_amp).lower()}"])
    # bf16 only where asked for and where the CPU has it; the run says which it used
    bf16 = cpu_amp and cpu_has_native_bf16()
    run = json.loads((out / "run.json").read_text())
    assert run["precision"] == ("bf16 autocast" if bf16 else "float32")
    assert ("bf16 autocast" if bf16 else "float32") in (out / "train.log").read_text()
    recs = _records(out)
    assert [r["epoch"] for r in recs] == [1, 2, 3, 4, 5]
    assert recs[-1]["train_loss_sup"] < 0.9 * recs[0]["train_loss_sup"]
    assert recs[-1]["val_loss"] < recs[0]["val_loss"]
    assert all(r["train_loss_cons"] == 0 for r in recs)


@pytest.fixture(scope="module")
def full_run(tiny_screen: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """One uninterrupted run (shared x2, fine-tuning x1 per cell type) and its events."""
    out = tmp_path_factory.mktemp("full") / "run"
    events: list[dict] = []
    result = run_training(tiny_screen, out, overrides=RUN, reporter=Reporter(events.append))
    assert result["cancelled"] is False
    return out, events


def test_run_folder_metrics_and_models(tiny_screen: Path, full_run: tuple[Path, list]) -> None:
    from deepnoise_engine.model.checkpoint import load_checkpoint, resolve_models

    out, events = full_run
    for name in ("config.toml", "train.log", "metrics.jsonl", "run.json",
                 "checkpoints/last.state.json", "checkpoints/last.state.safetensors"):
        assert (out / name).is_file(), name
    recs = _records(out)
    assert [r["stage"] for r in recs] == ["shared", "shared", "finetune:HEPG2", "finetune:U2OS"]
    for r in recs:
        assert set(r) >= METRIC_KEYS, METRIC_KEYS - set(r)
        assert set(r["per_model"]) == {"plain_cnn"}
        assert 0.0 <= r["val_acc_ensemble_balanced"] <= 1.0 and r["images_per_s"] > 0
    assert recs[1]["train_loss_cons"] > 0  # mean teacher is on in the tiny preset
    run = json.loads((out / "run.json").read_text())
    assert run["format"] == "deepnoise-run" and run["status"] == "complete"
    assert run["ensembles"] == {"*": ["models/shared_plain_cnn"],
                                "HEPG2": ["models/HEPG2_plain_cnn"],
                                "U2OS": ["models/U2OS_plain_cnn"]}
    stems = resolve_models(out)
    _, meta = load_checkpoint(stems["HEPG2"][0])
    assert meta["classes"] == run["classes"] and meta["role"] in ("teacher", "student")
    assert meta["served"] == run["served"]["models/HEPG2_plain_cnn"]
    # plate groups learnt at training time travel with the run and every model
    assert len(run["plate_groups"]) == 2 and meta["plate_groups"] == run["plate_groups"]
    assert meta["cell_types"] == ["HEPG2"] and meta["normalisation"]["mode"] == "plate"
    assert meta["image_size"] == 32 and meta["channels"] == [1, 2, 3, 4, 5, 6]
    kinds = {e["event"] for e in events}
    assert kinds == {"progress", "metrics", "log"}
    prog = [e for e in events if e["event"] == "progress"]
    assert prog[-1]["done"] == prog[-1]["total"] and prog[-1]["eta_s"] == 0
    assert {"stage", "done", "total", "eta_s"} <= set(prog[0])
    # a pseudo-label refresh happened on the unlabelled wells
    assert any(r["pseudo_labels_refreshed"] > 0 for r in recs)

    # the folder now holds a run: refused without resume, and with another config
    with pytest.raises(RunFolderError, match=r"pass --resume"):
        run_training(tiny_screen, out, overrides=RUN)
    with pytest.raises(RunFolderError, match=r"model\.epochs"):
        run_training(tiny_screen, out, overrides=[*RUN, "model.epochs=3"], resume=True)
    # resuming a finished run trains nothing and keeps the models
    before = {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()}
    again = run_training(tiny_screen, out, overrides=RUN, resume=True)
    assert again["epochs_done"] == 4 and len(_records(out)) == 4
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()}


def test_the_best_validation_epoch_is_served(full_run: tuple[Path, list]) -> None:
    from deepnoise_engine.train.evaluation import selection_score

    out, _ = full_run
    run = json.loads((out / "run.json").read_text())
    shared = [r for r in _records(out) if r["stage"] == "shared"]
    best = max((selection_score(r["per_model"]["plain_cnn"][f"val_acc_{role}_raw"],
                                r["per_model"]["plain_cnn"][f"val_acc_{role}_balanced"]),
                -r["epoch"], role) for r in shared for role in ("teacher", "student"))
    info = run["served"]["models/shared_plain_cnn"]
    assert info["score"] == pytest.approx(best[0]) and info["epoch"] == -best[1]
    assert info["role"] in ("teacher", "student") and "validation" in info["why"]
    # fine-tuning serves its own weights only when they beat the shared ones there
    for ct in ("HEPG2", "U2OS"):
        ft = run["served"][f"models/{ct}_plain_cnn"]
        assert ft["stage"] in (f"finetune:{ct}",) and ft["epoch"] in (0, 1)


def test_refuses_a_foreign_folder(tiny_screen: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("do not touch")
    with pytest.raises(RunFolderError, match="not a training run folder"):
        run_training(tiny_screen, out, overrides=RUN, resume=True)
    assert (out / "thesis.txt").read_text() == "do not touch"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


def _cancel_at(step: int, cancel: threading.Event):
    def progress(event: dict) -> None:
        if event["event"] == "progress" and event["done"] >= step:
            cancel.set()
    return progress


def test_cancel_then_resume_gives_identical_weights(tiny_screen: Path, tmp_path: Path,
                                                    full_run: tuple[Path, list]) -> None:
    full = full_run[0]

    part = tmp_path / "part"
    cancel = threading.Event()
    with pytest.raises(Cancelled) as stopped:  # mid-way through shared epoch 1
        run_training(tiny_screen, part, overrides=RUN,
                     reporter=Reporter(_cancel_at(1, cancel), cancel))
    assert stopped.value.partial["cancelled"] is True
    assert (part / "checkpoints" / "last.state.json").is_file()
    run = json.loads((part / "run.json").read_text())
    assert run["status"] == "cancelled" and run["ensembles"] == {}  # no stage finished yet
    assert run["data"] == str(tiny_screen.resolve())
    assert "resume with --resume" in (part / "train.log").read_text()

    # resume, cancel again inside the first fine-tuning stage, then finish
    cancel2 = threading.Event()
    events: list[dict] = []

    def progress2(event: dict) -> None:
        events.append(event)
        if event["event"] == "metrics" and event["stage"].startswith("finetune"):
            cancel2.set()

    with pytest.raises(Cancelled) as stopped:
        run_training(tiny_screen, part, overrides=RUN, resume=True,
                     reporter=Reporter(progress2, cancel2))
    res = stopped.value.partial
    assert res["cancelled"] is True and res["stage"].startswith("finetune")
    assert any(e["event"] == "log" and "resumed at shared epoch 1 step 1" in e["message"]
               for e in events)
    res = run_training(tiny_screen, part, overrides=RUN, resume=True)
    assert res["cancelled"] is False

    a, b = _weights(full), _weights(part)
    assert a.keys() == b.keys() and len(a) == 3
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert (a[name][key] == b[name][key]).all(), f"{name}:{key} differs after resume"
    ra, rb = _records(full), _records(part)
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]
    assert [r["val_acc_ensemble_raw"] for r in ra] == [r["val_acc_ensemble_raw"] for r in rb]


def test_paper_preset_two_model_ensemble(tiny_screen: Path, tmp_path: Path) -> None:
    """The paper pipeline (two backbones, SGD fine-tuning) scaled down to seconds."""
    out = tmp_path / "paper"
    result = run_training(tiny_screen, out, preset="paper", overrides=[
        *FAST, 'model.names=["xception_tiny", "resnet18"]', "model.epochs=1",
        "finetune.epochs_by_cell_type={}", "finetune.epochs=1", "finetune.tail_epochs=0"])
    assert result["cancelled"] is False
    run = json.loads((out / "run.json").read_text())
    assert run["ensembles"]["*"] == ["models/shared_xception_tiny", "models/shared_resnet18"]
    assert run["ensembles"]["U2OS"] == ["models/U2OS_xception_tiny", "models/U2OS_resnet18"]
    recs = _records(out)
    assert set(recs[0]["per_model"]) == {"xception_tiny", "resnet18"}
    assert recs[1]["stage"] == "finetune:HEPG2" and recs[1]["lr"] == pytest.approx(1e-3, 0.01)


def test_controls_are_balanced_per_epoch_and_s_follows_the_classes(
        tiny_screen: Path, tmp_path: Path) -> None:
    from deepnoise_engine.train.loop import resolved_arcface_s

    totals = {}
    for flag in ("true", "false"):
        events: list[dict] = []
        run_training(tiny_screen, tmp_path / flag, reporter=Reporter(events.append), overrides=[
            *FAST, "model.epochs=1", "finetune.enabled=false", "model.batch_size=4",
            f"data.balance_controls={flag}", "runtime.progress_every_s=0"])
        totals[flag] = [e for e in events if e["event"] == "progress"][-1]["total"]
    # controls have several times the wells of a siRNA: capped, an epoch is shorter
    assert totals["true"] < totals["false"]
    cfg = {"model": {"arcface_s": 0.0}}
    assert resolved_arcface_s(cfg, 1139) == pytest.approx(9.95, abs=0.01)  # sqrt(2) ln 1138
    assert resolved_arcface_s({"model": {"arcface_s": 30.0}}, 51) == 30.0
