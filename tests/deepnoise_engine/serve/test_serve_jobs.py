"""The job queue over a real engine process, with the built-in diagnostic ``sleep`` job:
event order, one job at a time, cancel (queued and running), error kinds, kills."""

from __future__ import annotations

import os
import signal
import time

import pytest

from deepnoise_engine.serve.client import EngineClient, EngineDiedError


def names(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def test_job_streams_progress_and_result(engine: EngineClient, collect) -> None:
    job = engine.request("sleep", seconds=0.6, steps=3, timeout=10)
    events = collect(engine, job, timeout=30)
    assert names(events)[:2] == ["accepted", "started"]
    assert names(events)[-2:] == ["result", "finished"]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 3
    assert all({"stage", "done", "total", "eta_s"} <= set(e) for e in progress)
    assert events[-2]["result"] == {"slept_s": 0.6, "steps": 3}
    assert events[-1]["status"] == "succeeded"
    assert all(e["request"] == events[0]["request"] for e in events)


def test_one_job_at_a_time_and_queued_cancel(engine: EngineClient, collect) -> None:
    first = engine.request("sleep", seconds=1.5, steps=15, timeout=10)
    second = engine.request("sleep", seconds=0.2, steps=2, timeout=10)
    third = engine.request("sleep", seconds=0.2, steps=2, timeout=10)
    jobs = {j["job"]: j for j in engine.request("list_jobs", timeout=10)["jobs"]}
    assert jobs[first]["status"] == "running"
    assert jobs[second]["status"] == "queued" and jobs[third]["status"] == "queued"
    # Cancelling a queued job removes it at once: it never starts.
    assert engine.cancel(third) == {"job": third, "status": "cancelled"}
    done = collect(engine, [first, second, third], timeout=30)
    ev1, ev2, ev3 = done[first], done[second], done[third]
    assert names(ev3) == ["accepted", "cancelled", "finished"]
    assert ev3[-1]["status"] == "cancelled"
    # The second started only after the first finished (one compute job at a time).
    assert names(ev1)[-1] == "finished" and names(ev2)[1] == "started"
    jobs = {j["job"]: j for j in engine.request("list_jobs", timeout=10)["jobs"]}
    assert jobs[second]["started"] >= jobs[first]["ended"]
    assert jobs[third]["started"] is None


def test_cancel_running_job(engine: EngineClient, collect, wait_event) -> None:
    job = engine.request("sleep", seconds=60, steps=600, timeout=10)
    wait_event(engine, job, "progress", timeout=30)
    t0 = time.monotonic()
    assert engine.cancel(job)["status"] == "cancelling"
    events = collect(engine, job, timeout=30)
    assert time.monotonic() - t0 < 5
    assert names(events)[-2:] == ["cancelled", "finished"]
    assert events[-1]["status"] == "cancelled"
    assert events[-2]["result"]["cancelled"] is True
    # A finished job cannot be cancelled again; it says how it ended.
    assert engine.cancel(job)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("fail", "kind", "words"),
    [
        ("error", "job_failed", "ValueError: diagnostic failure"),
        ("out_of_memory", "out_of_memory", "out of memory"),
        ("cuda_out_of_memory", "out_of_memory", "out of memory"),
        ("screen", "missing_image", "image missing"),
    ],
)
def test_failures_become_typed_error_events(
    engine: EngineClient, collect, fail: str, kind: str, words: str
) -> None:
    job = engine.request("sleep", seconds=0.05, steps=1, fail=fail, timeout=10)
    events = collect(engine, job, timeout=30)
    assert names(events)[-2:] == ["error", "finished"]
    error = events[-2]
    assert error["kind"] == kind and words in error["message"]
    assert "Traceback" in error["traceback"]
    assert events[-1]["status"] == "failed"
    if kind == "out_of_memory":
        assert "batch size" in error["suggestion"]
    if kind == "missing_image":
        assert error["file"] == "train.csv" and error["row"] == 7
    # The engine keeps serving after a failed job.
    assert engine.request("echo", timeout=10) == {"params": {}}


def test_sigkill_mid_job_is_noticed_within_two_seconds(
    fresh_engine: EngineClient, wait_event
) -> None:
    engine = fresh_engine
    job = engine.request("sleep", seconds=60, steps=600, timeout=10)
    wait_event(engine, job, "progress", timeout=30)
    os.kill(engine.pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(EngineDiedError) as info:
        while True:
            engine.next_event(timeout=10)
    assert time.monotonic() - t0 < 2.0
    assert info.value.returncode == -signal.SIGKILL and not info.value.expected
    assert "SIGKILL" in str(info.value)
    assert not engine.alive
    with pytest.raises(EngineDiedError):
        engine.request("hello", timeout=5)


def test_death_as_event_for_ui_adapters(fresh_engine: EngineClient) -> None:
    engine = fresh_engine
    os.kill(engine.pid, signal.SIGKILL)
    events = list(engine.events(timeout=5, died_as_event=True))
    assert events[-1]["event"] == "engine_died" and events[-1]["returncode"] == -9
    with pytest.raises(EngineDiedError):
        engine.next_event(timeout=1)


def test_shutdown_cancels_running_work(fresh_engine: EngineClient, wait_event) -> None:
    engine = fresh_engine
    job = engine.request("sleep", seconds=60, steps=600, timeout=10)
    queued = engine.request("sleep", seconds=1, timeout=10)
    wait_event(engine, job, "progress", timeout=30)
    t0 = time.monotonic()
    assert engine.shutdown(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    rest = list(engine.events(timeout=1, died_as_event=True))
    ends = {(e["job"], e["event"]) for e in rest}
    assert (job, "cancelled") in ends and (queued, "cancelled") in ends
    assert rest[-1]["event"] == "engine_died" and rest[-1]["expected"]
