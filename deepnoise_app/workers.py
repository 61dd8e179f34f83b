"""Helpers for the app's worker threads (superqt generator workers that relay progress).

Engine steps run in-process by the app (opening a screen, thumbnails) report through the
contract's ``Reporter``; :func:`run_with_reporter` relays its events to a worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from deepnoise_engine.contract import Reporter

P = TypeVar("P")
R = TypeVar("R")


def run_with_progress(
    fn: Callable[[Callable[[P], None]], R], poll_s: float = 0.05
) -> Generator[P, None, R]:
    """Run ``fn(report)`` in a thread; yield the latest value it reported, every ``poll_s``
    while it runs; return its result (its exception is raised here).

    For a generator worker: ``return (yield from run_with_progress(build))`` relays the
    progress of a function that only knows callbacks through the worker's ``yielded``.
    """
    reports: list[P] = []
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn(reports.append)
        except BaseException as exc:  # handed to the worker's thread below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    last = 0
    while thread.is_alive():
        thread.join(poll_s)
        if len(reports) > last:
            last = len(reports)
            yield reports[-1]
    if "error" in box:
        raise box["error"]
    return box["result"]


def run_with_reporter(
    fn: Callable[[Reporter], R], poll_s: float = 0.05
) -> Generator[dict[str, Any], None, R]:
    """:func:`run_with_progress` for an engine step that takes a ``Reporter``: yields the
    latest event dict it sent (``{"event": "progress", "stage", "done", "total", ...}``)."""
    return run_with_progress(lambda report: fn(Reporter(report)), poll_s)
