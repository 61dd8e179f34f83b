"""The events the engine sends (docs/protocol.md, "Events"), as typed models.

Every event has ``v``, ``event``, ``job`` (job id or null) and ``request`` (request id
or null). Models allow unknown fields (a newer engine may add some) and keep them.
:func:`parse_event` turns a decoded event dict into its model; the app reads events
through these types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
FinalStatus = Literal["succeeded", "failed", "cancelled"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(extra="allow", frozen=True)

    v: int = 1
    event: str
    job: str | None = None
    request: str | None = None


class Accepted(Event):
    """A job request was queued (``queue_position`` 0 = runs next)."""

    event: Literal["accepted"] = "accepted"
    type: str
    queue_position: int


class Started(Event):
    """The job begins to run."""

    event: Literal["started"] = "started"
    type: str


class Progress(Event):
    """``done`` of ``total`` units of ``stage`` (``total``/``eta_s`` null when unknown)."""

    event: Literal["progress"] = "progress"
    stage: str
    done: int | float  # int | float keeps a count an integer on the wire
    total: int | float | None = None
    eta_s: float | None = None


class Metrics(Event):
    """One ``metrics.jsonl`` record (training, once per epoch)."""

    event: Literal["metrics"] = "metrics"
    record: dict[str, Any]


class Log(Event):
    """A log line of a job."""

    event: Literal["log"] = "log"
    level: str = "info"
    message: str
    logger: str | None = None


class Result(Event):
    """Success; quick requests also carry their ``type``."""

    event: Literal["result"] = "result"
    type: str | None = None
    result: Any = None


class Error(Event):
    """Failure: ``kind`` names it (docs/protocol.md, "Error kinds")."""

    event: Literal["error"] = "error"
    kind: str
    message: str
    traceback: str | None = None
    suggestion: str | None = None
    file: str | None = None
    row: int | None = None


class Cancelled(Event):
    """The job stopped early: ``result`` is what it finished (null when it never ran)."""

    event: Literal["cancelled"] = "cancelled"
    result: dict[str, Any] | None = None


class Finished(Event):
    """Always the last event of a job."""

    event: Literal["finished"] = "finished"
    status: FinalStatus


class EngineDied(Event):
    """Made by the client (never sent by the engine): the engine process ended."""

    event: Literal["engine_died"] = "engine_died"
    returncode: int | None = None
    stderr_tail: str = ""
    expected: bool = False


EVENT_TYPES: dict[str, type[Event]] = {
    "accepted": Accepted,
    "started": Started,
    "progress": Progress,
    "metrics": Metrics,
    "log": Log,
    "result": Result,
    "error": Error,
    "cancelled": Cancelled,
    "finished": Finished,
    "engine_died": EngineDied,
}

#: Event names the engine sends (``engine_died`` is made by the client, never sent).
ENGINE_EVENTS: tuple[str, ...] = tuple(name for name in EVENT_TYPES if name != "engine_died")


def parse_event(event: dict[str, Any]) -> Event:
    """The typed model of a decoded event dict (an unknown ``event`` name: plain Event).

    Raises pydantic's ``ValidationError`` when a known event lacks a field it must have.
    """
    model = EVENT_TYPES.get(str(event.get("event")), Event)
    return model.model_validate(event)
