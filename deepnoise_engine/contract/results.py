"""The results of job requests (the ``result`` of their ``result`` event).

Models allow the steps' extra fields; the names here are the ones the app reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class JobResult(BaseModel):
    """Base of job results; ``cancelled`` is true in a ``cancelled`` event's result."""

    model_config = ConfigDict(extra="allow")

    cancelled: bool = False


class TrainResult(JobResult):
    """``train`` and ``resume``: the run folder, how far it got, its last metrics."""

    out: str | None = None
    stage: str | None = None
    epochs_done: int | None = None
    ensembles: dict[str, list[str]] | None = None
    final: dict[str, Any] | None = None
    validation_experiments: list[str] | None = None


class ScoreResult(JobResult):
    """``score``: the output folder, plates scored, files written, accuracy."""

    out: str | None = None
    plates: list[Any] | None = None
    files: Any = None
    accuracy: Any = None
    summary: Any = None


class PackResult(JobResult):
    """``pack``: the cache folder and site counts."""

    out: str
    sites: int
    ok_sites: int | None = None
    problems: int = 0
    pack: dict[str, Any] | None = None


class MakeDemoResult(JobResult):
    """``make_demo``: the synthetic screen's folder."""

    out: str


class ExportResult(JobResult):
    """``export``: the folder and the files written."""

    out: str
    files: list[str]
