"""The contract's types: events, request parameters, reporter, run-folder layout."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.contract.events import Error, Progress, parse_event
from deepnoise_engine.contract.requests import ScoreParams, TrainParams
from deepnoise_engine.contract.run_folder import is_resumable, new_run_problem


def test_events_parse_into_their_types() -> None:
    event = parse_event({"v": 1, "event": "progress", "job": "job-1", "request": "r1",
                         "stage": "train", "done": 3, "total": 10, "eta_s": None})
    assert isinstance(event, Progress) and event.done == 3 and event.total == 10
    error = parse_event({"v": 1, "event": "error", "job": None, "request": "r2",
                         "kind": "bad_request", "message": "x", "extra": 1})
    assert isinstance(error, Error) and error.model_extra == {"extra": 1}
    with pytest.raises(ValidationError):
        parse_event({"v": 1, "event": "finished", "job": "j", "request": "r"})  # no status


def test_request_params_null_means_default() -> None:
    params = TrainParams.model_validate({"data": "d", "out": "o", "preset": None})
    assert params.preset is None and params.given("preset", "data") == {"data": "d"}
    with pytest.raises(ValidationError):
        TrainParams.model_validate({"data": None, "out": "o"})  # required stays required
    with pytest.raises(ValidationError):
        ScoreParams.model_validate({"data": "d", "models": ["m"], "out": "o", "tta": True})


def test_reporter_sends_events_and_cancels() -> None:
    events: list[dict[str, Any]] = []
    cancel = threading.Event()
    reporter = Reporter(events.append, cancel)
    reporter.progress("train", 1, 4)
    reporter.log("hello")
    reporter.metrics({"epoch": 1})
    assert [e["event"] for e in events] == ["progress", "log", "metrics"]
    reporter.check_cancelled()
    cancel.set()
    with pytest.raises(Cancelled) as info:
        reporter.check_cancelled("stop", partial={"epochs_done": 1})
    assert info.value.partial == {"epochs_done": 1}


def test_run_folder_problems(tmp_path: Path) -> None:
    assert new_run_problem(tmp_path / "new") is None
    (tmp_path / "file").write_text("x")
    assert "is a file" in str(new_run_problem(tmp_path / "file"))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "notes.txt").write_text("x")
    assert "not a resumable run" in str(new_run_problem(run))
    (run / "config.toml").write_text("")
    (run / "checkpoints" / "last.state.json").write_text("{}")
    assert is_resumable(run) and "resumable run" in str(new_run_problem(run))
