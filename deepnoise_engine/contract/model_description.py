"""What ``describe_model`` answers: a run folder's or a checkpoint's models, read from JSON.

The engine builds these from run.json and the checkpoints' JSON metadata (never the
weights); the app shows them and checks that a model fits the open screen.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class CheckpointDescription(BaseModel):
    """One checkpoint of a run (or the single checkpoint described)."""

    model_config = ConfigDict(extra="allow")

    path: str
    architecture: str | None = None
    architecture_params: Any = None
    head: str | None = None
    role: str | None = None
    stage: str | None = None
    classes_count: int = 0
    classes: list[Any] = []
    channels: list[int] | None = None
    in_chans: int | None = None
    normalisation: str | None = None
    image_size: int | list[int] | None = None
    validation_accuracy: float | None = None
    validation_accuracy_ensemble: float | None = None
    cell_types: list[str] | None = None
    engine_version: str | None = None
    created: Any = None


class ModelDescription(BaseModel):
    """A run folder (``kind="run"``) or a checkpoint; first model's fields summarise it."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["run", "checkpoint"]
    path: str
    architecture: list[str] = []
    classes_count: int = 0
    classes: list[Any] = []
    channels: list[int] | None = None
    normalisation: str | None = None
    image_size: int | list[int] | None = None
    #: Best of the models, plate-balanced when known, else raw; None when unknown.
    validation_accuracy: float | None = None
    cell_types: list[str] = []
    #: Cell type (or ``"*"``) -> checkpoint paths that serve it.
    serves: dict[str, list[str]] = {}
    models: list[CheckpointDescription] = []
