"""The engine protocol: JSON lines on stdin/stdout (docs/protocol.md).

One UTF-8 JSON object per line. Requests come from the client::

    {"v": 1, "id": "<client request id>", "type": "<request type>", "params": {...}}

Events go back to the client::

    {"v": 1, "event": "<event name>", "job": "<job id>"|null, "request": "<request id>"|null, ...}

This module is torch-free and has no side effects: the server and the client both use it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Version of the wire format; bumped on any incompatible change.
PROTOCOL_VERSION = 1
#: Longest accepted request line in bytes (the newline excluded).
MAX_LINE_BYTES = 1024 * 1024

#: Event names the engine sends (``engine_died`` is made by the client, never sent).
EVENTS = (
    "accepted",
    "started",
    "progress",
    "metrics",
    "log",
    "result",
    "error",
    "finished",
    "cancelled",
)

#: Error kinds of the protocol itself; job errors add ``job_failed``, ``out_of_memory``,
#: ``cancelled`` and the typed kinds of the steps (``missing_image``, ``model_mismatch``, ...).
PROTOCOL_ERROR_KINDS = (
    "bad_request",
    "unknown_request",
    "too_large",
    "protocol_mismatch",
    "not_found",
    "shutting_down",
)


class ProtocolError(Exception):
    """A request that cannot be served: ``kind`` is the error kind sent back."""

    def __init__(self, kind: str, message: str, request_id: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.request_id = request_id


# --- request specifications ------------------------------------------------------------

#: Parameter types: a name understood by :func:`_check_type`.
ParamType = str


@dataclass(frozen=True)
class RequestSpec:
    """What a request type accepts. ``job`` types run in the job queue; others answer at once."""

    job: bool
    required: dict[str, ParamType] = field(default_factory=dict)
    optional: dict[str, ParamType] = field(default_factory=dict)
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    diagnostic: bool = False


_DEMO_OPTIONS: dict[str, ParamType] = {
    "seed": "int",
    "cell_types": "list[str]",
    "train_experiments_per_cell_type": "int",
    "test_experiments_per_cell_type": "int",
    "plates_per_experiment": "int",
    "plate_format": "int",
    "sirnas_per_plate": "int",
    "positive_controls": "int",
    "image_size": "int",
    "sites": "int",
    "channels": "int",
    "missing_wells": "int",
    "overwrite": "bool",
}

REQUESTS: dict[str, RequestSpec] = {
    "hello": RequestSpec(job=False),
    "list_jobs": RequestSpec(job=False),
    "describe_model": RequestSpec(job=False, required={"path": "str"}),
    "inspect": RequestSpec(
        job=False,
        required={"data": "str"},
        optional={"check_images": "bool", "max_problems": "int"},
    ),
    "cancel": RequestSpec(job=False, required={"job": "str"}),
    "shutdown": RequestSpec(job=False, optional={"wait_s": "number"}),
    "pack": RequestSpec(job=True, required={"data": "str"}, optional={"out": "str"}),
    "make_demo": RequestSpec(job=True, required={"out": "str"}, optional=_DEMO_OPTIONS),
    "train": RequestSpec(
        job=True,
        required={"data": "str", "out": "str"},
        optional={
            "preset": "str",
            "config_file": "str",
            "overrides": "list[str]",
            "device": "str",
        },
        choices={"device": ("cpu", "cuda", "auto")},
    ),
    "resume": RequestSpec(
        job=True,
        required={"out": "str"},
        optional={"data": "str", "device": "str"},
        choices={"device": ("cpu", "cuda", "auto")},
    ),
    "score": RequestSpec(
        job=True,
        required={"data": "str", "models": "list[str]", "out": "str"},
        optional={
            "plates": "list[str]",
            "balance": "str",
            "tta": "int",
            "submission": "str",
            "overwrite": "bool",
            "batch_size": "int",
            "device": "str",
        },
        choices={
            "balance": ("assignment", "paper", "none"),
            "tta": (1, 8),
            "device": ("cpu", "cuda", "auto"),
        },
    ),
    "export": RequestSpec(
        job=True,
        required={"score_dir": "str", "out": "str"},
        optional={
            "plates": "list[str]",
            "submission": "bool",
            "figures": "bool",
            "overwrite": "bool",
        },
    ),
    "qc": RequestSpec(
        job=True,
        required={"score_dir": "str"},
        optional={"out": "str", "overwrite": "bool", "block": "int", "seed": "int"},
    ),
    # Diagnostics (tests, health checks): ``echo`` answers its params, ``sleep`` is a
    # cancellable job that reports progress and can be told to fail.
    "echo": RequestSpec(job=False, optional={"payload": "any"}, diagnostic=True),
    "sleep": RequestSpec(
        job=True,
        optional={"seconds": "number", "steps": "int", "fail": "str", "say": "str"},
        choices={"fail": ("error", "out_of_memory", "cuda_out_of_memory", "screen")},
        diagnostic=True,
    ),
}


def _check_type(value: Any, kind: ParamType) -> bool:
    """True when ``value`` (decoded JSON) has the protocol type ``kind``."""
    if kind == "any":
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise ValueError(f"unknown parameter type {kind!r}")


_TYPE_WORDS = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "number": "a finite number",
    "list[str]": "a list of strings",
}


@dataclass(frozen=True)
class Request:
    """A validated request."""

    id: str
    type: str
    params: dict[str, Any]

    @property
    def spec(self) -> RequestSpec:
        return REQUESTS[self.type]


def parse_request(line: bytes | str) -> Request:
    """Decode and validate one request line; raises :class:`ProtocolError` naming the fault.

    ``request_id`` on the error is filled in as soon as the id could be read, so the
    client can match the error to its request.
    """
    if isinstance(line, bytes):
        if len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES:
            raise ProtocolError("too_large", f"request line longer than {MAX_LINE_BYTES} bytes")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("bad_request", f"request is not UTF-8: {exc}") from None
    else:
        text = line
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_request", f"request is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            "bad_request", f"request must be a JSON object, got {type(obj).__name__}"
        )
    rid = obj.get("id")
    if "id" not in obj:
        raise ProtocolError("bad_request", "request has no 'id' field")
    if not isinstance(rid, str) or not rid:
        raise ProtocolError("bad_request", "'id' must be a non-empty string")
    if "v" not in obj:
        raise ProtocolError("bad_request", "request has no 'v' (protocol version) field", rid)
    version = obj["v"]
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(
            "protocol_mismatch",
            f"client speaks protocol version {version!r} but this engine speaks version "
            f"{PROTOCOL_VERSION}; update the app or the engine so that they match",
            rid,
        )
    rtype = obj.get("type")
    if not isinstance(rtype, str):
        raise ProtocolError("bad_request", "'type' must be a string naming the request", rid)
    if rtype not in REQUESTS:
        known = ", ".join(sorted(REQUESTS))
        raise ProtocolError(
            "unknown_request", f"unknown request type {rtype!r} (known: {known})", rid
        )
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError("bad_request", f"'params' of {rtype!r} must be an object", rid)
    extra = set(obj) - {"v", "id", "type", "params"}
    if extra:
        names = ", ".join(sorted(extra))
        raise ProtocolError("bad_request", f"unknown request field(s): {names}", rid)
    check_params(rtype, params, rid)
    return Request(id=rid, type=rtype, params=params)


def check_params(rtype: str, params: dict[str, Any], request_id: str | None = None) -> None:
    """Validate ``params`` against the spec of ``rtype``; the error names the parameter."""
    spec = REQUESTS[rtype]
    for name in spec.required:
        if name not in params:
            raise ProtocolError(
                "bad_request", f"{rtype}: missing required parameter {name!r}", request_id
            )
    known = {**spec.required, **spec.optional}
    for name, value in params.items():
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ProtocolError(
                "bad_request",
                f"{rtype}: unknown parameter {name!r} (accepted: {names})",
                request_id,
            )
        if value is None and name in spec.optional:
            continue  # null means "use the default"
        if not _check_type(value, known[name]):
            raise ProtocolError(
                "bad_request",
                f"{rtype}.{name}: expected {_TYPE_WORDS.get(known[name], known[name])}, "
                f"got {_short(value)}",
                request_id,
            )
        allowed = spec.choices.get(name)
        if allowed is not None and value not in allowed:
            raise ProtocolError(
                "bad_request",
                f"{rtype}.{name}: {value!r} is not one of {', '.join(map(repr, allowed))}",
                request_id,
            )


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- events ------------------------------------------------------------------------------


def make_event(
    event: str, *, job: str | None = None, request: str | None = None, **fields: Any
) -> dict[str, Any]:
    """An event object with the envelope fields first."""
    return {"v": PROTOCOL_VERSION, "event": event, "job": job, "request": request, **fields}


def make_request(rtype: str, request_id: str, params: dict[str, Any] | None = None) -> dict:
    """A request object (what the client writes)."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "type": rtype, "params": params or {}}


def to_jsonable(obj: Any) -> Any:
    """Turn paths, numpy values, sets, tuples and non-finite floats into plain JSON values."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    item = getattr(obj, "item", None)  # numpy / torch scalars
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist())
    if callable(item):
        try:
            return to_jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(obj)


def encode(obj: dict[str, Any]) -> bytes:
    """One protocol line (UTF-8 JSON + newline); never emits NaN/Infinity."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = json.dumps(
            to_jsonable(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    return (text + "\n").encode("utf-8")


def decode_event(line: bytes | str) -> dict[str, Any]:
    """Parse one event line (client side); raises ValueError when it is not an event."""
    obj = json.loads(line)
    if not isinstance(obj, dict) or "event" not in obj:
        raise ValueError(f"not an engine event: {_short(obj)}")
    return obj
