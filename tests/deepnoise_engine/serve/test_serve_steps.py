"""The real steps through the engine process on a tiny synthetic screen: make_demo, inspect,
pack, train (progress, metrics, result), cancel, SIGKILL + resume, describe_model, score,
export. Each test skips when the step it needs is not in this checkout."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deepnoise_engine.serve.client import EngineClient, EngineDiedError, EngineRequestError

#: 32 px, one cell type, 3 experiments x 2 plates, 4 siRNAs per plate, 3 channels.
DEMO = {
    "seed": 5,
    "cell_types": ["HEPG2"],
    "train_experiments_per_cell_type": 2,
    "test_experiments_per_cell_type": 1,
    "plates_per_experiment": 2,
    "sirnas_per_plate": 4,
    "positive_controls": 1,
    "image_size": 32,
    "sites": 1,
    "channels": 3,
    "missing_wells": 1,
}
#: A seconds-long CPU training run, with a validation experiment per cell type (tiny
#: trains on all of them) so that the run reports a validation accuracy.
FAST = [
    "data.image_size=32",
    "data.workers=0",
    "model.batch_size=16",
    "runtime.threads=1",
    "model.eval_batch_size=64",
    "finetune.enabled=false",
    "data.validation_per_cell_type=1",
]


def need(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not in this checkout yet")


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def request_training(client: EngineClient, screen: Path, out: Path, *, epochs: int) -> str:
    """Submit the tiny preset's training (FAST, ``epochs`` shared epochs) on the CPU."""
    return client.request("train", data=str(screen), out=str(out), preset="tiny",
                          overrides=[*FAST, f"model.epochs={epochs}"], device="cpu",
                          timeout=30)


def names(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


@pytest.fixture(scope="module")
def screen(engine: EngineClient, collect: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo screen written by the engine's make_demo job."""
    need("deepnoise_engine.screen.synthetic")
    out = tmp_path_factory.mktemp("serve") / "demo"
    job = engine.request("make_demo", out=str(out), timeout=30, **DEMO)
    events = collect(engine, job, timeout=180)
    assert names(events)[-2:] == ["result", "finished"], events[-2:]
    assert events[-2]["result"]["out"] == str(out)
    return out


def test_inspect_tiny_demo_screen(engine: EngineClient, screen: Path) -> None:
    need("deepnoise_engine.screen.inspect")
    summary = engine.request("inspect", data=str(screen), timeout=60)
    text = json.dumps(summary)
    for exp in ("HEPG2-01", "HEPG2-02", "HEPG2-03"):
        assert exp in text
    n_classes = 2 * DEMO["sirnas_per_plate"] + DEMO["positive_controls"] + 1
    assert summary["counts"]["experiments"] == 3 and summary["counts"]["plates"] == 6
    assert summary["counts"]["classes"] == n_classes
    assert summary["channels"] == [1, 2, 3] and summary["image_size"] == [32, 32]
    with pytest.raises(EngineRequestError) as info:
        engine.request("inspect", data=str(screen / "nowhere"), timeout=60)
    assert info.value.kind == "screen_not_found" and "nowhere" in info.value.message


def test_pack_job(engine: EngineClient, screen: Path, collect: Any) -> None:
    need("deepnoise_engine.screen.pack_cache")
    job = engine.request("pack", data=str(screen), timeout=30)
    events = collect(engine, job, timeout=180)
    assert names(events)[-2:] == ["result", "finished"], events[-2:]
    result = events[-2]["result"]
    assert Path(result["out"]).is_dir()
    assert result["sites"] > 0 and 0 < result["ok_sites"] <= result["sites"]
    assert any(e["event"] == "progress" for e in events)


def test_bad_training_requests_fail_with_named_errors(
    engine: EngineClient, screen: Path, collect: Any, tmp_path: Path
) -> None:
    need("deepnoise_engine.train.loop")
    job = engine.request(
        "train",
        data=str(screen),
        out=str(tmp_path / "run"),
        overrides=["model.epochs=abc"],
        timeout=30,
    )
    error = collect(engine, job, timeout=120)[-2]
    assert error["event"] == "error" and error["kind"] == "config_error"
    assert "model.epochs" in error["message"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "precious.txt").write_text("keep me")
    job = engine.request(
        "train", data=str(screen), out=str(tmp_path / "full"), overrides=FAST, timeout=30
    )
    error = collect(engine, job, timeout=120)[-2]
    assert error["event"] == "error" and "not empty" in error["message"]
    assert (tmp_path / "full" / "precious.txt").read_text() == "keep me"


@pytest.fixture(scope="module")
def trained(
    screen: Path, collect: Any, wait_event: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Train 2 epochs; SIGKILL the engine after epoch 1; resume in a new engine."""
    need("deepnoise_engine.train.loop")
    out = tmp_path_factory.mktemp("serve-run") / "run"
    first = EngineClient(env=env())
    first.start(timeout=120)
    job = request_training(first, screen, out, epochs=2)
    before = wait_event(first, job, "metrics", timeout=300)
    os.kill(first.pid, signal.SIGKILL)
    t0 = time.monotonic()
    try:
        while True:
            first.next_event(timeout=10)
    except EngineDiedError as exc:
        died, died_after = exc, time.monotonic() - t0
    second = EngineClient(env=env())
    second.start(timeout=120)
    resume = second.request("resume", out=str(out), data=str(screen), timeout=30)
    after = collect(second, resume, timeout=300)
    yield {
        "out": out,
        "before": before,
        "after": after,
        "died": died,
        "died_after": died_after,
        "engine": second,
    }
    second.shutdown(timeout=10)


def test_training_streams_progress_metrics_and_result(trained: dict[str, Any]) -> None:
    before, after = trained["before"], trained["after"]
    assert names(before)[:2] == ["accepted", "started"]
    progress = [e for e in before if e["event"] == "progress"]
    assert progress and all(e["total"] and e["done"] <= e["total"] for e in progress)
    metrics = [e for e in before if e["event"] == "metrics"]
    assert (
        metrics[0]["record"]["epoch"] == 1 and "val_acc_ensemble_balanced" in metrics[0]["record"]
    )
    assert names(after)[-2:] == ["result", "finished"], after[-3:]
    assert after[-2]["result"]["cancelled"] is False
    assert any(e["event"] == "metrics" and e["record"]["epoch"] == 2 for e in after)


def test_sigkill_mid_training_then_resume(trained: dict[str, Any]) -> None:
    assert trained["died"].returncode == -signal.SIGKILL
    assert trained["died_after"] < 2.0
    records = [json.loads(x) for x in (trained["out"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["stage"] == "shared"] == [1, 2]
    assert any(e["event"] == "log" and "resumed" in e["message"] for e in trained["after"])
    assert json.loads((trained["out"] / "run.json").read_text())["status"] == "complete"


def test_cancel_training_leaves_resumable_checkpoint(
    engine: EngineClient, screen: Path, collect: Any, wait_event: Any, tmp_path: Path
) -> None:
    need("deepnoise_engine.train.loop")
    out = tmp_path / "run"
    job = request_training(engine, screen, out, epochs=50)
    wait_event(engine, job, "progress", timeout=300)
    t0 = time.monotonic()
    assert engine.cancel(job)["status"] == "cancelling"
    events = collect(engine, job, timeout=60)
    assert time.monotonic() - t0 < 5.0
    assert names(events)[-2:] == ["cancelled", "finished"]
    assert events[-2]["result"]["cancelled"] is True
    assert (out / "checkpoints" / "last.state.json").is_file()


def test_describe_model(trained: dict[str, Any]) -> None:
    need("deepnoise_engine.model.checkpoint")
    info = trained["engine"].request("describe_model", path=str(trained["out"]), timeout=60)
    assert info["kind"] == "run"
    assert info["architecture"] == ["plain_cnn"]
    n_classes = 2 * DEMO["sirnas_per_plate"] + DEMO["positive_controls"] + 1
    assert info["classes_count"] == len(info["classes"]) == n_classes
    assert info["channels"] == [1, 2, 3]
    assert info["normalisation"] == "plate" and info["image_size"] == 32
    assert 0.0 <= info["validation_accuracy"] <= 1.0
    assert info["cell_types"] == ["HEPG2"] and "*" in info["serves"]
    one = trained["engine"].request("describe_model", path=info["serves"]["*"][0], timeout=60)
    assert one["kind"] == "checkpoint" and one["classes_count"] == n_classes


def test_score_and_export(
    trained: dict[str, Any], screen: Path, collect: Any, tmp_path: Path
) -> None:
    need("deepnoise_engine.workflows.score", "deepnoise_engine.report.export")
    engine = trained["engine"]
    scored = tmp_path / "scores"
    job = engine.request(
        "score",
        data=str(screen),
        models=[str(trained["out"])],
        out=str(scored),
        tta=1,
        device="cpu",
        timeout=30,
    )
    events = collect(engine, job, timeout=300)
    assert names(events)[-2:] == ["result", "finished"], events[-2:]
    csvs = sorted(p.name for p in scored.glob("*_Plate*.csv"))
    assert "HEPG2-03_Plate1.csv" in csvs and len(csvs) == 6
    # Scoring again into the same folder is refused unless overwrite; nothing is lost.
    job = engine.request(
        "score",
        data=str(screen),
        models=[str(trained["out"])],
        out=str(scored),
        tta=1,
        device="cpu",
        timeout=30,
    )
    error = collect(engine, job, timeout=300)[-2]
    assert error["event"] == "error" and error["kind"] == "file_exists"
    exported = tmp_path / "export"
    job = engine.request(
        "export",
        score_dir=str(scored),
        out=str(exported),
        plates=["HEPG2-03:1"],
        figures=False,
        timeout=30,
    )
    result = collect(engine, job, timeout=120)[-2]["result"]
    files = sorted(Path(f).name for f in result["files"])
    assert "HEPG2-03_Plate1.csv" in files and "HEPG2-03_Plate2.csv" not in files
    assert all(Path(f).is_file() for f in result["files"])


def test_model_that_does_not_fit_is_refused(
    trained: dict[str, Any], collect: Any, tmp_path: Path
) -> None:
    need("deepnoise_engine.workflows.score")
    engine = trained["engine"]
    other = tmp_path / "two-channels"  # the model was trained on 3
    job = engine.request("make_demo", out=str(other), timeout=30, **{**DEMO, "channels": 2})
    assert collect(engine, job, timeout=180)[-1]["status"] == "succeeded"
    job = engine.request(
        "score",
        data=str(other),
        models=[str(trained["out"])],
        out=str(tmp_path / "s"),
        tta=1,
        device="cpu",
        timeout=30,
    )
    error = collect(engine, job, timeout=300)[-2]
    assert error["event"] == "error" and error["kind"] == "model_mismatch", error
    assert "channel" in error["message"] and error["suggestion"]
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
