"""The engine process under faults: a full disk during a job, a reused request id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepnoise_engine.screen.synthetic import make_demo
from deepnoise_engine.serve.client import EngineClient


def job_events(client: EngineClient, job: str, timeout: float) -> list[dict]:
    """The events of ``job`` up to its ``finished`` event."""
    events: list[dict] = []
    while not events or events[-1]["event"] != "finished":
        event = client.next_event(timeout=timeout)
        if event.get("job") == job:
            events.append(event)
    return events


@pytest.mark.slow
def test_full_disk_during_pack_is_an_error_and_the_engine_keeps_serving(
        fresh_engine: EngineClient, tmp_path: Path, tmpfs) -> None:
    demo = make_demo(tmp_path / "demo", cell_types=("HEPG2",), image_size=192,
                     plates_per_experiment=4, plate_format=96,
                     train_experiments_per_cell_type=1, test_experiments_per_cell_type=0)
    with tmpfs(tmp_path / "disk", "20m") as disk:
        job = fresh_engine.request("pack", data=str(demo), out=str(disk / "pack"))
        events = job_events(fresh_engine, job, timeout=120)
        names = [e["event"] for e in events]
        assert names[0] == "accepted" and "started" in names
        error = next(e for e in events if e["event"] == "error")
        assert error["kind"] == "disk_full"
        assert error["path"] == str(disk / "pack" / "plates")
        assert error["space_needed"] > error["space_free"] > 0
        assert "choose another output folder" in error["suggestion"]
        assert events[-1] == {**events[-1], "event": "finished", "status": "failed"}
        # still serving: the same job to a folder with room succeeds
        assert fresh_engine.request("echo", payload=2, timeout=10) == {"params": {"payload": 2}}
    job = fresh_engine.request("pack", data=str(demo), out=str(tmp_path / "pack"))
    events = job_events(fresh_engine, job, timeout=300)
    assert events[-1]["status"] == "succeeded", events[-3:]


def test_a_reused_request_id_is_refused(fresh_engine: EngineClient) -> None:
    line = json.dumps({"v": 1, "id": "same", "type": "echo", "params": {"payload": 1}}) + "\n"
    fresh_engine.send_raw(line.encode())
    first = fresh_engine.next_event(timeout=10)
    assert first["event"] == "result" and first["request"] == "same"
    fresh_engine.send_raw(line.encode())
    second = fresh_engine.next_event(timeout=10)
    assert second["event"] == "error" and second["kind"] == "duplicate_request"
    assert "'same'" in second["message"] and second["request"] == "same"
    assert fresh_engine.request("echo", payload=3, timeout=10) == {"params": {"payload": 3}}


def test_train_request_on_a_screen_that_cannot_be_opened_leaves_no_stub(
        fresh_engine: EngineClient, tmp_path: Path) -> None:
    out = tmp_path / "run"
    job = fresh_engine.request("train", data=str(tmp_path / "nowhere"), out=str(out))
    events = job_events(fresh_engine, job, timeout=120)
    error = next(e for e in events if e["event"] == "error")
    assert error["kind"] == "screen_not_found" and str(tmp_path / "nowhere") in error["message"]
    assert events[-1]["status"] == "failed"
    assert not out.exists()
