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
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from deepnoise_engine.contract.events import ENGINE_EVENTS, Event, parse_event
from deepnoise_engine.contract.requests import (
    DIAGNOSTIC_REQUESTS,
    JOB_REQUESTS,
    QUICK_REQUESTS,
    Params,
)

#: Version of the wire format; bumped on any incompatible change.
PROTOCOL_VERSION = 1
#: Longest accepted request line in bytes (the newline excluded).
MAX_LINE_BYTES = 1024 * 1024

#: Event names the engine sends (``engine_died`` is made by the client, never sent).
EVENTS = ENGINE_EVENTS

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


@dataclass(frozen=True)
class RequestSpec:
    """What a request type accepts. ``job`` types run in the job queue; others answer at once."""

    job: bool
    params: type[Params]
    diagnostic: bool = False


REQUESTS: dict[str, RequestSpec] = {
    **{name: RequestSpec(False, model, name in DIAGNOSTIC_REQUESTS)
       for name, model in QUICK_REQUESTS.items()},
    **{name: RequestSpec(True, model, name in DIAGNOSTIC_REQUESTS)
       for name, model in JOB_REQUESTS.items()},
}


@dataclass(frozen=True)
class Request:
    """A validated request: ``params`` as sent, ``model`` the typed parameters."""

    id: str
    type: str
    params: dict[str, Any]
    model: Params

    @property
    def spec(self) -> RequestSpec:
        return REQUESTS[self.type]


def parse_request(line: bytes | str) -> Request:
    """Decode and validate one request line; raises :class:`ProtocolError` naming the fault.

    ``request_id`` on the error is filled in as soon as the id could be read, so the
    client can match the error to its request.
    """
    obj = _decode_object(line)
    rid = obj.get("id")
    if "id" not in obj:
        raise ProtocolError("bad_request", "request has no 'id' field")
    if not isinstance(rid, str) or not rid:
        raise ProtocolError("bad_request", "'id' must be a non-empty string")
    _check_version(obj, rid)
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
    return Request(id=rid, type=rtype, params=params, model=check_params(rtype, params, rid))


def _decode_object(line: bytes | str) -> dict[str, Any]:
    """The JSON object of a request line (``too_large``/``bad_request`` otherwise)."""
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
    return obj


def _check_version(obj: dict[str, Any], rid: str) -> None:
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


def check_params(rtype: str, params: dict[str, Any], request_id: str | None = None) -> Params:
    """Validate ``params`` with the model of ``rtype``; the error names the parameter.

    Faults are reported in a fixed order: a missing required parameter first, then the
    given parameters in their order (unknown, wrong type, not an allowed value).
    """
    model = REQUESTS[rtype].params
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    fields = model.model_fields
    for name, info in fields.items():
        if info.is_required() and name not in params:
            raise ProtocolError(
                "bad_request", f"{rtype}: missing required parameter {name!r}", request_id
            )
    faulty = {str(e["loc"][0]) for e in errors if e["loc"]}
    for name, value in params.items():
        if name not in faulty:
            continue
        if name not in fields:
            accepted = ", ".join(sorted(fields)) or "none"
            message = f"{rtype}: unknown parameter {name!r} (accepted: {accepted})"
        else:
            message = f"{rtype}.{name}: {_value_fault(fields[name].annotation, value)}"
        raise ProtocolError("bad_request", message, request_id)
    raise ProtocolError("bad_request", f"{rtype}: {errors[0]['msg']}", request_id)


def _value_fault(annotation: Any, value: Any) -> str:
    """Why ``value`` does not fit a parameter declared as ``annotation``."""
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = kinds[0]
    if typing.get_origin(kind) is Literal:
        allowed = typing.get_args(kind)
        base = type(allowed[0])
        if isinstance(value, base) and not (base is int and isinstance(value, bool)):
            return f"{value!r} is not one of {', '.join(map(repr, allowed))}"
        kind = base
    return f"expected {_TYPE_WORDS.get(_type_name(kind), str(kind))}, got {_short(value)}"


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is list:
        return "list[str]"
    return getattr(kind, "__name__", str(kind))


_TYPE_WORDS = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "float": "a finite number",
    "list[str]": "a list of strings",
}


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- events ------------------------------------------------------------------------------


def make_event(
    event: str, *, job: str | None = None, request: str | None = None, **fields: Any
) -> dict[str, Any]:
    """An event object with the envelope fields first."""
    return {"v": PROTOCOL_VERSION, "event": event, "job": job, "request": request, **fields}


def make_request(
    rtype: str, request_id: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
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


def event_dict(event: Event) -> dict[str, Any]:
    """A typed event as its wire object: the envelope first, then the fields it was given
    (an optional field never set stays absent, as the engine sends it)."""
    fields = event.model_dump(exclude_unset=True)
    for name in ("v", "event", "job", "request"):
        fields.pop(name, None)
    return make_event(event.event, job=event.job, request=event.request, **fields)


def encode(obj: dict[str, Any] | Event) -> bytes:
    """One protocol line (UTF-8 JSON + newline); never emits NaN/Infinity."""
    if isinstance(obj, Event):
        obj = event_dict(obj)
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = json.dumps(
            to_jsonable(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    return (text + "\n").encode("utf-8")


def decode_typed_event(line: bytes | str) -> Event:
    """Parse one event line into its contract type (``Progress``, ``Result``, ...)."""
    return parse_event(decode_event(line))


def decode_event(line: bytes | str) -> dict[str, Any]:
    """Parse one event line (client side); raises ValueError when it is not an event."""
    obj = json.loads(line)
    if not isinstance(obj, dict) or "event" not in obj:
        raise ValueError(f"not an engine event: {_short(obj)}")
    return obj
