"""One reporter for a job's progress, log and metrics, and one cancellation exception.

Every long step (make-demo, pack, train, score, qc, convert) takes a ``Reporter``; it
sends events shaped as the protocol's events (``{"event": "progress"|"log"|"metrics",
...}``, without ``v``/``job``/``request``) to one sink, and raises ``Cancelled`` from
``check_cancelled()`` once the user asked to stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

EventSink = Callable[[dict[str, Any]], None]
"""Receives one event dict; the only progress-callback shape in the engine."""


class Cancelled(Exception):
    """The user cancelled the job; raised between units of work.

    ``partial`` is what the step finished before stopping (for example the stages a
    training run completed); outputs that were not finished are left untouched.
    """

    def __init__(self, message: str = "cancelled",
                 partial: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial: dict[str, Any] = dict(partial or {})


class Reporter:
    """Carries progress, log lines and metrics records to ``sink``; knows about cancel.

    ``Reporter()`` with no sink and no cancel event reports nowhere and never cancels.
    """

    def __init__(self, sink: EventSink | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.sink = sink
        self.cancel_event = cancel if cancel is not None else threading.Event()
        self._stage: str | None = None
        self._stage_t0 = time.monotonic()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self, message: str = "cancelled",
                        partial: Mapping[str, Any] | None = None) -> None:
        """Raise ``Cancelled(message, partial)`` when the user asked to stop."""
        if self.cancel_event.is_set():
            raise Cancelled(message, partial)

    def emit(self, event: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink(event)

    def progress(self, stage: str, done: float, total: float | None,
                 eta_s: float | None = None, **fields: Any) -> None:
        """Report ``done`` of ``total`` units of ``stage``; the ETA is estimated from the
        time since the stage began when not given (the first stage began when the reporter
        was made, i.e. when the job started; later ones at their first report)."""
        now = time.monotonic()
        if stage != self._stage:
            if self._stage is not None:
                self._stage_t0 = now
            self._stage = stage
        elapsed = now - self._stage_t0
        if eta_s is None and total and done and elapsed > 0.05:
            eta_s = elapsed / done * max(total - done, 0)
        self.emit({"event": "progress", "stage": stage, "done": done, "total": total,
                   "eta_s": None if eta_s is None else round(eta_s, 1), **fields})

    def log(self, message: str, level: str = "info") -> None:
        self.emit({"event": "log", "level": level, "message": str(message)})

    def metrics(self, record: Mapping[str, Any]) -> None:
        self.emit({"event": "metrics", **record})
