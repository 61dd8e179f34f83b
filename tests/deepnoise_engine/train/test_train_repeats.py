"""``model.repeats``: independent trainings from other seeds in one run folder, listed
together in run.json (scored as one ensemble); progress over all of them; a cancel inside
a later repeat resumes to the same weights."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import FAST
from safetensors.torch import load_file

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.model.checkpoint import CheckpointError, check_run_complete, resolve_models
from deepnoise_engine.workflows.train import run_training

RUN = [*FAST, "model.epochs=2", "finetune.epochs=1", "runtime.progress_every_s=0"]
TWO = [*RUN, "model.repeats=2"]


def _weights(folder: Path) -> dict[str, dict]:
    return {p.name: load_file(p) for p in sorted((folder / "models").glob("*.safetensors"))}


def _same(a: dict[str, dict], b: dict[str, dict]) -> bool:
    return a.keys() == b.keys() and all(
        a[n].keys() == b[n].keys() and all((a[n][k] == b[n][k]).all() for k in a[n]) for n in a)


@pytest.fixture(scope="module")
def two(tiny_screen: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, dict]:
    """A run of two repeats, its events and result."""
    out = tmp_path_factory.mktemp("repeats") / "run"
    events: list[dict] = []
    result = run_training(tiny_screen, out, overrides=TWO, reporter=Reporter(events.append))
    return out, events, result


def test_repeats_are_independent_runs_listed_in_one_run_json(
        two: tuple[Path, list, dict], tiny_screen: Path, tmp_path: Path) -> None:
    out, _, result = two
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and result["repeats"] == 2
    assert [(r["folder"], r["seed"]) for r in run["repeats"]] == [(".", 0), ("repeats/2", 1)]
    for key in ("*", "HEPG2", "U2OS"):
        name = "shared" if key == "*" else key
        assert run["ensembles"][key] == [f"models/{name}_plain_cnn",
                                          f"repeats/2/models/{name}_plain_cnn"]
        assert run["ensembles"][key] == result["ensembles"][key]
    assert set(run["served"]) >= {"models/shared_plain_cnn", "repeats/2/models/shared_plain_cnn"}
    sub = (out / "repeats" / "2" / "config.toml").read_text()
    assert "seed = 1" in sub and "repeats = 1" in sub
    # repeat 1 is exactly the single run of the same seed; repeat 2 learnt other weights
    single = tmp_path / "single"
    run_training(tiny_screen, single, overrides=RUN)
    assert _same(_weights(out), _weights(single))
    assert not _same(_weights(out), _weights(out / "repeats" / "2"))
    # scoring the run folder ensembles both repeats per cell type
    assert {k: len(v) for k, v in resolve_models(out).items()} == {"*": 2, "HEPG2": 2, "U2OS": 2}


def test_progress_log_and_metrics_cover_every_repeat(two: tuple[Path, list, dict]) -> None:
    _, events, _ = two
    progress = [e for e in events if e["event"] == "progress"]
    totals = {e["total"] for e in progress}
    assert len(totals) == 1  # one bar for the whole run
    done = [e["done"] for e in progress]
    assert done == sorted(done) and done[-1] == totals.pop()
    assert {e["repeat"] for e in progress} == {1, 2} and {e["repeats"] for e in progress} == {2}
    metrics = [e for e in events if e["event"] == "metrics"]
    per_repeat = [sum(1 for m in metrics if m["repeat"] == k) for k in (1, 2)]
    assert per_repeat[0] == per_repeat[1] == 4  # shared x2, one fine-tuning epoch per cell type
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any(m.startswith("repeat 2/2: training plain_cnn") for m in logs)


def test_cancel_in_the_second_repeat_resumes_to_the_same_weights(
        two: tuple[Path, list, dict], tiny_screen: Path, tmp_path: Path) -> None:
    out = tmp_path / "part"
    cancel = threading.Event()

    def stop_in_repeat_2(event: dict) -> None:
        if event["event"] == "progress" and event.get("repeat") == 2:
            cancel.set()

    with pytest.raises(Cancelled) as stopped:
        run_training(tiny_screen, out, overrides=TWO, reporter=Reporter(stop_in_repeat_2, cancel))
    assert stopped.value.partial["out"] == str(out) and stopped.value.partial["repeat"] == 2
    # repeat 1 finished, yet the run is not offered for scoring until repeat 2 is
    assert json.loads((out / "run.json").read_text())["status"] == "cancelled"
    with pytest.raises(CheckpointError, match="not complete"):
        check_run_complete(out)
    result = run_training(tiny_screen, out, overrides=TWO, resume=True)
    assert result["cancelled"] is False
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    full = two[0]
    assert _same(_weights(out), _weights(full))
    assert _same(_weights(out / "repeats" / "2"), _weights(full / "repeats" / "2"))
