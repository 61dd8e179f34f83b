"""The wire format: request validation, event encoding, error mapping (in-process, fast)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepnoise_engine.screen.errors import MissingImageError
from deepnoise_engine.serve.errors import OutOfMemoryError, error_fields, error_kind
from deepnoise_engine.serve.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    REQUESTS,
    ProtocolError,
    encode,
    make_request,
    parse_request,
)


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def test_valid_request_round_trip() -> None:
    req = parse_request(encode(make_request("train", "a1", {"data": "/d", "out": "/o"})))
    assert (req.id, req.type, req.params) == ("a1", "train", {"data": "/d", "out": "/o"})
    assert req.spec.job and not REQUESTS["hello"].job


@pytest.mark.parametrize(
    ("raw", "kind", "words"),
    [
        (b"not json\n", "bad_request", "not valid JSON"),
        (b"\xff\xfe\n", "bad_request", "not UTF-8"),
        (line([1, 2]), "bad_request", "JSON object"),
        (line({"v": 1, "type": "hello"}), "bad_request", "'id'"),
        (line({"v": 1, "id": 5, "type": "hello"}), "bad_request", "'id' must be"),
        (line({"id": "a", "type": "hello"}), "bad_request", "'v'"),
        (line({"v": 1, "id": "a", "type": 3}), "bad_request", "'type'"),
        (line({"v": 1, "id": "a", "type": "fly"}), "unknown_request", "'fly'"),
        (line({"v": 1, "id": "a", "type": "hello", "params": []}), "bad_request", "params"),
        (line({"v": 1, "id": "a", "type": "hello", "x": 1}), "bad_request", "x"),
        (
            line({"v": 1, "id": "a", "type": "train", "params": {"data": "d"}}),
            "bad_request",
            "'out'",
        ),
        (
            line({"v": 1, "id": "a", "type": "train", "params": {"data": 1, "out": "o"}}),
            "bad_request",
            "train.data: expected a string",
        ),
        (
            line(
                {
                    "v": 1,
                    "id": "a",
                    "type": "score",
                    "params": {"data": "d", "models": ["m"], "out": "o", "tta": 3},
                }
            ),
            "bad_request",
            "score.tta",
        ),
        (
            line({"v": 1, "id": "a", "type": "pack", "params": {"data": "d", "speed": 9}}),
            "bad_request",
            "unknown parameter 'speed'",
        ),
        (
            line(
                {
                    "v": 1,
                    "id": "a",
                    "type": "train",
                    "params": {"data": "d", "out": "o", "overrides": "a=1"},
                }
            ),
            "bad_request",
            "list of strings",
        ),
        (line({"v": True, "id": "a", "type": "hello"}), "protocol_mismatch", "True"),
    ],
)
def test_malformed_requests_name_the_fault(raw: bytes, kind: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(raw)
    assert info.value.kind == kind
    assert words in info.value.message


def test_error_keeps_request_id_once_known() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(line({"v": 1, "id": "abc", "type": "nope"}))
    assert info.value.request_id == "abc"


def test_version_mismatch_names_both_versions() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(line({"v": 7, "id": "a", "type": "hello"}))
    assert info.value.kind == "protocol_mismatch"
    assert "7" in info.value.message and str(PROTOCOL_VERSION) in info.value.message


def test_oversized_line_is_too_large() -> None:
    big = b'{"v":1,"id":"a","type":"echo","params":{"payload":"' + b"x" * MAX_LINE_BYTES + b'"}}'
    with pytest.raises(ProtocolError) as info:
        parse_request(big + b"\n")
    assert info.value.kind == "too_large"


def test_encode_is_strict_json() -> None:
    data = encode(
        {
            "a": math.nan,
            "b": np.float32(1.5),
            "c": Path("/x"),
            "d": (1, 2),
            "e": np.arange(3),
            "f": "é",
        }
    )
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {
        "a": None,
        "b": 1.5,
        "c": "/x",
        "d": [1, 2],
        "e": [0, 1, 2],
        "f": "é",
    }


def test_error_kinds() -> None:
    assert error_kind(OutOfMemoryError("boom")) == "out_of_memory"
    assert error_kind(RuntimeError("CUDA out of memory. Tried to allocate")) == "out_of_memory"
    assert error_kind(MissingImageError("gone", file="a.png")) == "missing_image"
    assert error_kind(FileExistsError("x")) == "file_exists"
    assert error_kind(ValueError("x")) == "job_failed"
    try:
        raise ValueError("broken")
    except ValueError as exc:
        fields = error_fields(exc)
    assert fields["message"] == "ValueError: broken"
    assert "raise ValueError" in fields["traceback"]
    oom = error_fields(RuntimeError("CUDA out of memory"))
    assert "batch size" in oom["suggestion"]
    screen = error_fields(MissingImageError("gone", file="a.png", row=3))
    assert screen["file"] == "a.png" and screen["row"] == 3


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.one_of(
        st.binary(max_size=64),
        _json.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {},
            optional={
                "v": _json,
                "id": _json,
                "type": st.sampled_from(sorted(REQUESTS)) | st.text(max_size=6),
                "params": _json,
            },
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_parse_never_raises_anything_else(raw: bytes) -> None:
    try:
        req = parse_request(raw)
    except ProtocolError as exc:
        assert exc.kind in ("bad_request", "unknown_request", "protocol_mismatch", "too_large")
        assert exc.message
    else:
        assert req.type in REQUESTS


@pytest.mark.parametrize(
    "wire",
    [
        {"v": 1, "event": "accepted", "job": "job-1", "request": "r1", "type": "train",
         "queue_position": 0},
        {"v": 1, "event": "progress", "job": "job-1", "request": "r1", "stage": "shared",
         "done": 3, "total": None, "eta_s": None},
        {"v": 1, "event": "error", "job": "job-1", "request": "r1", "kind": "disk_full",
         "message": "no space", "path": "/x", "space_needed": None, "space_free": 0},
        {"v": 1, "event": "cancelled", "job": "job-1", "request": "r1", "result": None},
        {"v": 1, "event": "result", "job": None, "request": "r2", "type": "hello",
         "result": {"protocol": 1}},
        {"v": 1, "event": "finished", "job": "job-1", "request": "r1", "status": "failed"},
    ],
)
def test_typed_events_keep_the_wire(wire: dict) -> None:
    from deepnoise_engine.serve.protocol import decode_typed_event

    typed = decode_typed_event(encode(wire))
    assert typed.event == wire["event"]
    assert encode(typed) == encode(wire)
