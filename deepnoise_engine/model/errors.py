"""Typed model errors (torch-free). Each names the file it concerns where there is one."""

from __future__ import annotations


class ModelError(Exception):
    """Base class for model and checkpoint problems; ``kind`` is a stable machine name."""

    kind = "model_error"

    def __init__(self, message: str, file: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.detail = message
        super().__init__(f"{self.file}: {message}" if self.file else message)


class CheckpointError(ModelError):
    """A checkpoint or training-state file is missing, corrupt, unsafe or of unknown format."""

    kind = "checkpoint_error"


class ModelMismatchError(ModelError):
    """A model does not fit the screen (channels, classes)."""

    kind = "model_mismatch"


class UnknownModelError(ModelError, ValueError):
    """No registered or timm model has this name."""

    kind = "unknown_model"
