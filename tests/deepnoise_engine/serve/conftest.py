"""Fixtures of the engine-process tests: real ``deepnoise-engine serve`` subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from deepnoise_engine.serve.client import EngineClient


def engine_env() -> dict[str, str]:
    """Environment of a test engine: one thread per library (2 shared cores)."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineClient]:
    """One engine shared by the tests of a module (started once: ~1 s)."""
    client = EngineClient(env=engine_env())
    client.start(timeout=120)
    yield client
    client.shutdown(timeout=10)


@pytest.fixture
def fresh_engine() -> Iterator[EngineClient]:
    """An engine of its own, for tests that kill or stop it."""
    client = EngineClient(env=engine_env())
    client.start(timeout=120)
    yield client
    if client.alive:
        client.shutdown(timeout=10)
    else:
        client.kill()


def job_events(client: EngineClient, job: str | list[str], timeout: float = 60.0) -> Any:
    """Events of ``job`` up to and including its ``finished`` event (other jobs' events are
    dropped). With a list of jobs: ``{job: events}`` once all of them have finished."""
    import time

    jobs = [job] if isinstance(job, str) else list(job)
    seen: dict[str, list[dict[str, Any]]] = {j: [] for j in jobs}
    open_jobs = set(jobs)
    deadline = time.monotonic() + timeout
    while open_jobs:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"jobs {open_jobs} did not finish in {timeout} s: {seen}")
        event = client.next_event(timeout=left)
        if event.get("job") in seen:
            seen[event["job"]].append(event)
            if event["event"] == "finished":
                open_jobs.discard(event["job"])
    return seen[job] if isinstance(job, str) else seen


def wait_for(
    client: EngineClient, job: str, name: str, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Events of ``job`` up to and including the first ``name`` event."""
    import time

    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {name!r} event of {job} in {timeout} s; got {seen[-5:]}")
        event = client.next_event(timeout=left)
        if event.get("job") == job:
            seen.append(event)
            if event["event"] == name:
                return seen
            if event["event"] == "finished":
                raise AssertionError(f"job {job} finished before {name!r}: {seen[-3:]}")


@pytest.fixture(scope="session")
def collect() -> Any:
    """``collect(client, job, timeout)``: the events of a job up to ``finished``."""
    return job_events


@pytest.fixture(scope="session")
def wait_event() -> Any:
    """``wait_event(client, job, name, timeout)``: events of a job up to the first ``name``."""
    return wait_for
