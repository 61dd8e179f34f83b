"""The engine process over real pipes: hello, robustness to bad input, versions, stopping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepnoise_engine.serve.client import (
    EngineClient,
    EngineDiedError,
    EngineRequestError,
    ProtocolMismatchError,
)
from deepnoise_engine.serve.protocol import MAX_LINE_BYTES, PROTOCOL_VERSION


def engine_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_hello_reports_versions_and_devices(engine: EngineClient) -> None:
    hello = engine.request("hello", timeout=30)
    assert hello["protocol"] == PROTOCOL_VERSION
    assert hello["engine_version"]
    assert hello["python"].count(".") == 2
    assert hello["torch"]  # the engine has torch even though the client never imports it
    assert hello["pid"] == engine.pid
    cpu = [d for d in hello["devices"] if d["type"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["memory_bytes"] > 0
    assert all(set(d) >= {"name", "type", "memory_bytes"} for d in hello["devices"])
    assert {"train", "score", "inspect", "cancel", "shutdown"} <= set(hello["requests"])


def test_client_stays_torch_free() -> None:
    code = (
        "import sys; import deepnoise_engine.serve.client; "
        "sys.exit(int('torch' in sys.modules or 'PySide6' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _raw_answer(engine: EngineClient, data: bytes, timeout: float = 10) -> dict:
    engine.send_raw(data)
    return engine.next_event(timeout=timeout)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"{not json}\n", "bad_request"),
        (b"[1, 2, 3]\n", "bad_request"),
        (b'{"v": 1, "id": "q1"}\n', "bad_request"),
        (b'{"v": 1, "id": "q2", "type": "teleport"}\n', "unknown_request"),
        (
            b'{"v": 1, "id": "q3", "type": "train", "params": {"data": 5, "out": "x"}}\n',
            "bad_request",
        ),
        (b'{"v": 1, "id": "q4", "type": "cancel", "params": {"job": "job-999"}}\n', "not_found"),
    ],
)
def test_bad_lines_get_error_events(engine: EngineClient, raw: bytes, kind: str) -> None:
    event = _raw_answer(engine, raw)
    assert event["event"] == "error" and event["kind"] == kind, event
    assert event["message"]
    assert engine.request("echo", payload=1, timeout=10) == {"params": {"payload": 1}}


def test_error_names_the_request(engine: EngineClient) -> None:
    with pytest.raises(EngineRequestError) as info:
        engine.request("describe_model", path="/nonexistent/model", timeout=10)
    assert info.value.kind == "checkpoint_error"
    assert "/nonexistent/model" in info.value.message


def test_protocol_version_mismatch_is_clear(engine: EngineClient) -> None:
    event = _raw_answer(engine, b'{"v": 2, "id": "old", "type": "hello"}\n')
    assert event["kind"] == "protocol_mismatch" and event["request"] == "old"
    assert "version 2" in event["message"] and f"version {PROTOCOL_VERSION}" in event["message"]


def test_client_refuses_engine_of_another_version(tmp_path: Path) -> None:
    """A (real, tiny) engine answering hello with protocol 99 -> ProtocolMismatchError."""
    fake = tmp_path / "old_engine.py"
    fake.write_text(
        textwrap.dedent("""
        import json, sys
        for line in sys.stdin:
            req = json.loads(line)
            print(json.dumps({"v": 99, "event": "result", "job": None,
                              "request": req["id"], "result": {"protocol": 99}}), flush=True)
    """)
    )
    client = EngineClient(command=[sys.executable, str(fake)])
    with pytest.raises(ProtocolMismatchError) as info:
        client.start(timeout=30)
    assert "99" in str(info.value) and f"version {PROTOCOL_VERSION}" in str(info.value)
    client.shutdown(timeout=2)


def test_oversized_line_is_refused_and_engine_keeps_serving(engine: EngineClient) -> None:
    payload = "x" * (MAX_LINE_BYTES + 10)
    data = json.dumps({"v": 1, "id": "big", "type": "echo", "params": {"payload": payload}})
    event = _raw_answer(engine, data.encode() + b"\n")
    assert event["kind"] == "too_large" and event["request"] == "big"
    # A line just under the limit is still served.
    small = "y" * (MAX_LINE_BYTES - 200)
    assert engine.request("echo", payload=small, timeout=30) == {"params": {"payload": small}}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
# Request-like objects: any envelope, quick or unknown types only (a valid job request would
# legitimately start a job), ids that cannot collide with the client's own ("r<n>").
_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 1, 1, 0, 2, "1", None, 1.0, True]),
        "id": st.text(max_size=8).map(lambda s: "h" + s) | _json,
        "type": st.sampled_from(["hello", "list_jobs", "echo", "cancel", "teleport", ""])
        | st.text(max_size=8),
        "params": _json
        | st.dictionaries(st.sampled_from(["job", "payload", "data", "x"]), _json, max_size=3),
        "extra": _json,
    },
)
_messages = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=100).map(lambda s: s.replace("\n", " ").encode("utf-8", "surrogatepass")),
    _json.map(lambda v: json.dumps(v).encode()),
    _envelopes.map(lambda v: json.dumps(v).encode()),
)


def test_thousand_random_messages_leave_it_serving(fresh_engine: EngineClient) -> None:
    engine = fresh_engine
    counts = {"sent": 0}

    @settings(
        max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(_messages)
    def send(message: bytes) -> None:
        engine.send_raw(message + b"\n")
        counts["sent"] += 1

    send()
    assert counts["sent"] >= 1000
    # Every line got at most one answer; all are errors or quick results, none is a crash.
    assert engine.request("echo", payload="still here", timeout=60) == {
        "params": {"payload": "still here"}
    }
    answers = list(engine.events(timeout=1))
    assert answers, "malformed lines must be answered"
    assert all(a["event"] in ("error", "result") for a in answers), answers[:5]
    assert {a.get("kind") for a in answers if a["event"] == "error"} <= {
        "bad_request",
        "unknown_request",
        "protocol_mismatch",
        "not_found",
    }
    assert engine.request("hello", timeout=30)["protocol"] == PROTOCOL_VERSION
    assert engine.alive


def test_shutdown_exits_zero(fresh_engine: EngineClient) -> None:
    assert fresh_engine.shutdown(timeout=10) == 0
    assert not fresh_engine.alive
    with pytest.raises(EngineDiedError) as info:
        fresh_engine.request("hello", timeout=5)
    assert info.value.expected and info.value.returncode == 0


def test_stdin_closing_stops_the_engine() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepnoise_engine", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=engine_env(),
    )
    out, err = proc.communicate(b'{"v": 1, "id": "a", "type": "echo"}\n', timeout=60)
    assert proc.returncode == 0, err
    events = [json.loads(x) for x in out.splitlines()]
    assert events == [
        {
            "v": 1,
            "event": "result",
            "job": None,
            "request": "a",
            "type": "echo",
            "result": {"params": {}},
        }
    ]
    assert b"serving protocol" in err  # the log goes to stderr, never stdout


def test_stray_prints_never_reach_the_protocol_stream(engine: EngineClient, collect) -> None:
    """print() and raw writes to fd 1 inside the engine go to stderr: stdout carries events."""
    job = engine.request("sleep", seconds=0.05, steps=1, say="hello from a job", timeout=10)
    events = collect(engine, job, timeout=30)
    assert [e["event"] for e in events][-2:] == ["result", "finished"]
    assert engine.request("echo", payload="ok", timeout=10) == {"params": {"payload": "ok"}}
    deadline = time.monotonic() + 5
    while engine.stderr_tail().count("hello from a job") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    tail = engine.stderr_tail()
    assert tail.count("hello from a job") == 2  # print() and os.write(1, ...)
    assert "unparseable engine output" not in tail


def test_engine_that_cannot_start_reports_its_log() -> None:
    """An engine dying at start-up (here: exit 3 after a log line) fails start() at once."""
    code = "import sys; sys.stderr.write('boom: engine could not start\\n'); sys.exit(3)"
    client = EngineClient(command=[sys.executable, "-c", code])
    t0 = time.monotonic()
    with pytest.raises(EngineDiedError) as info:
        client.start(timeout=60)
    assert time.monotonic() - t0 < 10
    assert info.value.returncode == 3
    assert "boom: engine could not start" in str(info.value)
    assert "boom" in client.stderr_tail()


SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"


def test_inspect_real_rxrx1_sample(engine: EngineClient) -> None:
    """The real sample through the engine: 6 channels, 1,139 classes, problems counted."""
    if not (SAMPLE / "train.csv").is_file():
        pytest.skip(f"the RxRx1 sample is not at {SAMPLE}")
    pending = engine.submit("inspect", data=str(SAMPLE))
    # A slow inspect never blocks the engine: quick requests still answer meanwhile.
    assert engine.request("echo", payload="meanwhile", timeout=30)["params"] == {
        "payload": "meanwhile"
    }
    event = next(e for e in engine.events(timeout=120) if e["request"] == pending)
    assert event["event"] == "result", event
    summary = event["result"]
    assert summary["channels"] == [1, 2, 3, 4, 5, 6]
    assert summary["counts"]["classes"] == 1139
    assert summary["problems"]["by_kind"]["missing_image"] > 0


def test_engine_that_never_answers_is_killed_after_timeout(tmp_path: Path) -> None:
    mute = tmp_path / "mute_engine.py"
    mute.write_text(
        "import sys, time\nprint('mute engine up', file=sys.stderr, flush=True)\ntime.sleep(60)\n"
    )
    client = EngineClient(command=[sys.executable, str(mute)])
    with pytest.raises(TimeoutError) as info:
        client.start(timeout=3)
    assert "hello" in str(info.value)
    deadline = time.monotonic() + 5
    while client.returncode is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.returncode == -9 and not client.alive
