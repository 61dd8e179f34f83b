"""Exceptions -> the protocol's error kinds and ``error`` event fields (docs/protocol.md).

Also the stand-in for torch's out-of-memory error that the diagnostic ``sleep`` job
raises (tests check the mapping without a GPU).
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from pydantic import ValidationError

from deepnoise_engine.contract.events import Error
from deepnoise_engine.serve.protocol import event_dict, make_event

_SUGGESTIONS = {
    "out_of_memory": (
        "Lower the batch size (train: overrides ['train.batch_size=16']; score: batch_size) "
        "or the image size, or run on the CPU."
    ),
    "model_mismatch": "Choose a model trained on a screen with the same channels and classes.",
    "file_exists": "Choose another output folder, or set overwrite to replace it.",
    "not_found": "Check the path.",
    "disk_full": "Free space on the disk holding 'path' (at least 'space_needed' bytes) or "
    "choose another output folder, then run it again: finished work is kept.",
}


class OutOfMemoryError(RuntimeError):
    """Stand-in with torch.cuda.OutOfMemoryError's name (the diagnostic ``sleep`` job)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, a RuntimeError saying "out of memory", or MemoryError."""
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_kind(exc: BaseException) -> str:
    """The protocol error kind of an exception raised by a job or a quick request."""
    if is_out_of_memory(exc):
        return "out_of_memory"
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind  # typed screen errors (missing_image, bad_well, ...)
    if isinstance(exc, FileExistsError):
        return "file_exists"
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    cls = type(exc)
    if cls.__module__.startswith("deepnoise_engine") and cls.__name__.endswith("Error"):
        snake = _snake(cls.__name__)  # ModelMismatchError -> model_mismatch
        stripped = snake.removesuffix("_error")
        return stripped if "_" in stripped else snake
    return "job_failed"


def error_fields(exc: BaseException) -> dict[str, Any]:
    """``error`` event fields: kind, message, traceback, suggestion? and file/row when known
    (``disk_full`` adds ``path``, ``space_needed`` and ``space_free``, in bytes)."""
    from deepnoise_engine.disk_space import DiskFullError, is_disk_full

    if is_disk_full(exc) and not isinstance(exc, DiskFullError):
        exc = DiskFullError(getattr(exc, "filename", None) or "?", None)
    kind = error_kind(exc)
    message = str(exc) or type(exc).__name__
    if kind == "job_failed":
        message = f"{type(exc).__name__}: {message}"
    fields: dict[str, Any] = {
        "kind": kind,
        "message": message,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
    suggestion = getattr(exc, "suggestion", None) or _SUGGESTIONS.get(kind)
    if kind not in _SUGGESTIONS and getattr(exc, "file", None):
        suggestion = suggestion or "Fix the file named in the message (inspect lists all)."
    if suggestion:
        fields["suggestion"] = suggestion
    for name in ("file", "row"):
        value = getattr(exc, name, None)
        if value is not None:
            fields[name] = str(value) if name == "file" else value
    if isinstance(exc, DiskFullError):
        fields.update(path=exc.path, space_needed=exc.needed, space_free=exc.free)
    return fields


def error_event(fields: dict[str, Any], job: str | None = None,
                request: str | None = None) -> dict[str, Any]:
    """The ``error`` event of ``fields``, checked against the contract's ``Error`` type;
    fields it cannot type (an exception's odd ``row``) still go out as they are."""
    try:
        return event_dict(Error(job=job, request=request, **fields))
    except ValidationError:
        return make_event("error", job=job, request=request, **fields)
