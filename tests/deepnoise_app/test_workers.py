"""run_with_progress: a callback-reporting function relayed through a generator."""

from __future__ import annotations

import time

import pytest

from deepnoise_app.workers import run_with_progress, run_with_reporter


def _drain(gen):
    yielded = []
    try:
        while True:
            yielded.append(next(gen))
    except StopIteration as stop:
        return yielded, stop.value


def test_relays_the_latest_reports_and_returns_the_result() -> None:
    def build(report):
        for i in range(1, 4):
            report(i)
            time.sleep(0.08)  # longer than the poll: each report is seen
        return "done"

    yielded, result = _drain(run_with_progress(build, poll_s=0.02))
    assert result == "done"
    assert yielded == [1, 2, 3]


def test_the_function_s_error_is_raised_in_the_caller() -> None:
    def fails(report):
        report(1)
        raise ValueError("no such plate")

    with pytest.raises(ValueError, match="no such plate"):
        _drain(run_with_progress(fails, poll_s=0.01))


def test_relays_a_reporter_s_events() -> None:
    def step(reporter):
        for i in range(1, 3):
            reporter.progress("open", i, 2)
            time.sleep(0.08)
        return "opened"

    yielded, result = _drain(run_with_reporter(step, poll_s=0.02))
    assert result == "opened"
    assert [(e["event"], e["stage"], e["done"]) for e in yielded] == [
        ("progress", "open", 1), ("progress", "open", 2)]
