"""Client of the engine process: starts ``deepnoise-engine serve`` and talks JSON lines.

Torch-free and Qt-free: the app wraps it in a Qt adapter. Typical use::

    with EngineClient() as engine:
        hello = engine.start()
        job = engine.request("train", data="/screen", out="/runs/a", preset="tiny")
        for event in engine.events():
            if event["event"] == "finished" and event["job"] == job:
                break

A reader thread parses the engine's stdout into a queue of events; a second thread keeps
the last lines of its stderr; a third waits on the process and, within 2 s of its death,
posts an ``engine_died`` event, after which :meth:`next_event`, :meth:`events` and
:meth:`request` raise :class:`EngineDiedError`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from deepnoise_engine.serve.protocol import PROTOCOL_VERSION, REQUESTS, encode, make_request

#: Lines of the engine's stderr kept for error messages.
STDERR_LINES = 50


class EngineError(Exception):
    """Base class of the client's errors."""


class EngineDiedError(EngineError):
    """The engine process exited or closed its output. ``returncode`` is -N for signal N."""

    def __init__(self, returncode: int | None, stderr_tail: str = "", expected: bool = False):
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.expected = expected
        how = "was stopped" if expected else "died"
        if returncode is not None and returncode < 0:
            try:
                code = f"killed by {signal.Signals(-returncode).name}"
            except ValueError:
                code = f"killed by signal {-returncode}"
        else:
            code = f"exit code {returncode}"
        message = f"the engine process {how} ({code})"
        if stderr_tail.strip():
            last = stderr_tail.strip().splitlines()[-5:]
            message += "; last lines of its log:\n" + "\n".join(last)
        super().__init__(message)


class ProtocolMismatchError(EngineError):
    """The engine speaks another protocol version than this client."""


class EngineRequestError(EngineError):
    """The engine answered a request with an ``error`` event."""

    def __init__(self, event: dict[str, Any]):
        self.event = event
        self.kind: str = str(event.get("kind", "unknown"))
        self.message: str = str(event.get("message", ""))
        self.suggestion: str | None = event.get("suggestion")
        self.traceback: str | None = event.get("traceback")
        text = f"{self.kind}: {self.message}"
        if self.suggestion:
            text += f" ({self.suggestion})"
        super().__init__(text)


class EngineTimeoutError(EngineError, TimeoutError):
    """No answer within the timeout."""


def default_command() -> list[str]:
    """``python -m deepnoise_engine serve``; in the desktop bundle ``DeepNoise engine serve``."""
    if getattr(sys, "frozen", False):  # PyInstaller: the bundle's launcher dispatches "engine"
        return [sys.executable, "engine", "serve"]
    return [sys.executable, "-m", "deepnoise_engine", "serve"]


class EngineClient:
    """Starts and talks to one engine process (see the module docstring)."""

    def __init__(
        self,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ):
        self.command = list(command) if command is not None else default_command()
        self.env = env
        self.cwd = cwd
        self.hello: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._waiters: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._ids = itertools.count(1)
        self._died: dict[str, Any] | None = None
        self._died_seen = False
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # -- process -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._died is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def stderr_tail(self) -> str:
        """The last lines the engine wrote to stderr (its log)."""
        with self._lock:
            return "\n".join(self._stderr)

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Start the engine and say hello; returns the hello result.

        Raises ProtocolMismatchError when the engine speaks another protocol version and
        EngineDiedError (with the engine's last log lines) when it does not come up.
        """
        if self._proc is not None:
            raise EngineError("this client already started an engine; make a new client")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONIOENCODING", "utf-8")
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # a terminal's Ctrl-C is for the app, not us
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.cwd,
            bufsize=-1,
            **kwargs,
        )
        for target, name in (
            (self._read_stdout, "stdout"),
            (self._read_stderr, "stderr"),
            (self._watch, "watch"),
        ):
            thread = threading.Thread(target=target, name=f"engine-client-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            hello = self.request("hello", timeout=timeout)
        except EngineRequestError as exc:
            if exc.kind == "protocol_mismatch":
                self.kill()
                raise ProtocolMismatchError(
                    f"the engine refused this app's protocol version {PROTOCOL_VERSION}: "
                    f"{exc.message}"
                ) from None
            self.kill()
            raise
        except EngineTimeoutError:
            self.kill()  # never leave a hung engine behind
            tail = self.stderr_tail().strip().splitlines()[-5:]
            raise EngineTimeoutError(
                f"the engine did not answer hello within {timeout} s"
                + ("; last lines of its log:\n" + "\n".join(tail) if tail else "")
            ) from None
        version = hello.get("protocol") if isinstance(hello, dict) else None
        if version != PROTOCOL_VERSION:
            self.kill()
            raise ProtocolMismatchError(
                f"the engine ({' '.join(self.command)}) speaks protocol version {version!r} "
                f"but this app speaks version {PROTOCOL_VERSION}; install matching versions "
                "of the app and the engine"
            )
        self.hello = hello
        return hello

    def kill(self) -> None:
        """Kill the engine at once (SIGKILL); the death is reported like any other."""
        if self._proc is not None and self._proc.poll() is None:
            self._stopping = True
            self._proc.kill()

    def shutdown(self, timeout: float = 5.0) -> int | None:
        """Ask the engine to stop (running work is cancelled), kill it after ``timeout``.

        Returns the exit code (0 for a clean stop).
        """
        proc = self._proc
        if proc is None:
            return None
        deadline = time.monotonic() + timeout
        if proc.poll() is None and self._died is None:
            self._stopping = True
            with contextlib.suppress(EngineError, TimeoutError):
                self.request("shutdown", timeout=timeout, wait_s=max(timeout - 1.0, 0.0))
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return proc.returncode

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- sending -------------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"r{next(self._ids)}"

    def send_raw(self, data: bytes) -> None:
        """Write bytes to the engine's stdin as they are (diagnostics and tests)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise EngineError("the engine is not started")
        try:
            with self._write_lock:
                proc.stdin.write(data)
                proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._raise_died(wait=2.0)

    def _send(self, rtype: str, params: dict[str, Any], wait: bool) -> tuple[str, Any]:
        if self._died is not None:
            self._raise_died()
        rid = self._new_id()
        waiter: queue.Queue[dict[str, Any]] | None = None
        if wait:
            waiter = queue.Queue()
            with self._lock:
                self._waiters[rid] = waiter
        try:
            self.send_raw(encode(make_request(rtype, rid, params)))
        except BaseException:
            with self._lock:
                self._waiters.pop(rid, None)
            raise
        return rid, waiter

    def submit(self, type: str, **params: Any) -> str:
        """Send a request; returns its request id. All its events go to :meth:`events`."""
        rid, _ = self._send(type, params, wait=False)
        return rid

    def request(self, type: str, timeout: float | None = 60.0, **params: Any) -> Any:
        """Send a request and wait for its answer.

        Quick requests (hello, inspect, describe_model, list_jobs, cancel, ...) return the
        ``result``; job requests (train, score, ...) return the job id once ``accepted``
        (the job's events, ``accepted`` included, then come from :meth:`events`). An
        ``error`` answer raises EngineRequestError, the engine's death EngineDiedError.
        """
        rid, waiter = self._send(type, params, wait=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
                try:
                    event = waiter.get(timeout=remaining)
                except queue.Empty:
                    raise EngineTimeoutError(f"no answer to {type!r} within {timeout} s") from None
                name = event.get("event")
                if name == "engine_died":
                    self._raise_died()
                if name == "error":
                    raise EngineRequestError(event)
                if name == "result" and event.get("job") is None:
                    return event.get("result")
                if name == "accepted":
                    return event.get("job")
        finally:
            with self._lock:
                self._waiters.pop(rid, None)

    def cancel(self, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Cancel a job: ``{"job", "status": "cancelled"|"cancelling"|...}``."""
        return self.request("cancel", timeout=timeout, job=job_id)

    # -- receiving -----------------------------------------------------------------------

    def next_event(
        self, timeout: float | None = None, *, died_as_event: bool = False
    ) -> dict[str, Any]:
        """The next event; TimeoutError (EngineTimeoutError) when none comes in ``timeout``.

        When the engine has died, raises EngineDiedError - or, with ``died_as_event``,
        returns the ``engine_died`` event once (then raises).
        """
        if self._proc is None:
            raise EngineError("the engine is not started")
        if self._died_seen and self._events.empty():
            self._raise_died()
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            raise EngineTimeoutError(f"no engine event within {timeout} s") from None
        if event.get("event") == "engine_died":
            self._died_seen = True
            if died_as_event:
                return event
            self._raise_died()
        return event

    def events(
        self, timeout: float | None = None, *, died_as_event: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Iterate over events; ends when none comes within ``timeout`` seconds (None: never).

        Raises EngineDiedError when the engine dies (``died_as_event``: yields the
        ``engine_died`` event and ends).
        """
        while True:
            try:
                event = self.next_event(timeout, died_as_event=died_as_event)
            except EngineTimeoutError:
                return
            yield event
            if event.get("event") == "engine_died":
                return

    def _raise_died(self, wait: float = 0.0) -> None:
        if self._died is None and wait and self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=wait)
            end = time.monotonic() + wait
            while self._died is None and time.monotonic() < end:
                time.sleep(0.02)
        died = self._died or {
            "returncode": self.returncode,
            "stderr_tail": self.stderr_tail(),
            "expected": self._stopping,
        }
        raise EngineDiedError(died["returncode"], died["stderr_tail"], died["expected"])

    # -- threads ---------------------------------------------------------------------------

    def _dispatch(self, event: dict[str, Any]) -> None:
        rid = event.get("request")
        with self._lock:
            waiter = self._waiters.get(rid) if isinstance(rid, str) else None
        if waiter is not None:
            waiter.put(event)
            # The answer of a quick request belongs to its caller only.
            if event.get("job") is None and event.get("event") in ("result", "error"):
                return
        self._events.put(event)

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in iter(self._proc.stdout.readline, b""):
            try:
                event = json.loads(raw)
                if not isinstance(event, dict) or "event" not in event:
                    raise ValueError("not an event object")
            except ValueError:
                text = raw.decode("utf-8", "replace").rstrip()
                with self._lock:
                    self._stderr.append(f"[unparseable engine output] {text[:500]}")
                continue
            self._dispatch(event)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in iter(self._proc.stderr.readline, b""):
            with self._lock:
                self._stderr.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _watch(self) -> None:
        """Wait for the process to end, let the readers drain, then post ``engine_died``."""
        assert self._proc is not None
        returncode = self._proc.wait()
        for thread in self._threads[:2]:
            thread.join(timeout=0.75)
        died = {
            "v": PROTOCOL_VERSION,
            "event": "engine_died",
            "job": None,
            "request": None,
            "returncode": returncode,
            "stderr_tail": self.stderr_tail(),
            "expected": self._stopping,
        }
        self._died = died
        self._events.put(died)
        with self._lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.put(died)


__all__ = [
    "REQUESTS",
    "EngineClient",
    "EngineDiedError",
    "EngineError",
    "EngineRequestError",
    "EngineTimeoutError",
    "ProtocolMismatchError",
    "default_command",
]
