"""Qt adapter over the engine process: ``EngineBridge`` turns engine events into Qt signals.

The engine (``deepnoise-engine serve``) runs in its own process and is driven through the
torch-free ``deepnoise_engine.serve.client.EngineClient``. A reader thread pulls the
client's events and posts them to the bridge, which lives in the main thread, so every
public signal is emitted on the main (GUI) thread. The engine starts in the background
(the window appears at once); requests submitted before it is ready are queued and sent
when the engine says hello. The engine's death (crash, OOM kill, SIGKILL) becomes the
``engine_died`` signal and never raises into the UI; ``restart()`` starts a fresh engine.

Request ids returned by ``submit`` are the bridge's own (``"r1"``, ``"r2"``, ...): they
exist before the engine is up and stay valid across the queue. Every event the bridge
emits carries ``request`` (the bridge id) and, for jobs, ``job`` (the engine's id).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from qtpy.QtCore import QObject, Qt, Signal, Slot

from deepnoise_engine.contract.events import ENGINE_EVENTS, parse_event

#: Engine events relayed as the bridge signals of the same name.
_EVENT_SIGNALS = ENGINE_EVENTS

#: Bridge states, in the order a healthy engine goes through them.
STOPPED, STARTING, READY, DEAD = "stopped", "starting", "ready", "dead"


log = logging.getLogger(__name__)


class EngineUnavailableError(RuntimeError):
    """The engine could not answer: it is not running and did not start in time."""


def _client_class() -> type:
    """The engine client class (imported lazily: the serve package may land later)."""
    from deepnoise_engine.serve.client import EngineClient

    return EngineClient


def _is_died_error(exc: BaseException) -> bool:
    """True for the client's EngineDiedError (matched by name so no import is needed)."""
    return any(cls.__name__ == "EngineDiedError" for cls in type(exc).__mro__)


class EngineBridge(QObject):
    """Owns one engine process; its events arrive as Qt signals on the main thread.

    Signals carry the engine's event dicts (``{"event", "job", "request", ...}``):
    ``accepted, started, progress, metrics, log, result, error, finished, cancelled``;
    ``engine_ready(hello: dict)`` when the engine answered hello (``devices`` in it);
    ``engine_died(info: dict)`` with ``returncode``, ``stderr_tail`` and ``message``;
    ``state_changed(state: str)`` with one of stopped / starting / ready / dead.
    """

    accepted = Signal(dict)
    started = Signal(dict)
    progress = Signal(dict)
    metrics = Signal(dict)
    log = Signal(dict)
    result = Signal(dict)
    error = Signal(dict)
    finished = Signal(dict)
    cancelled = Signal(dict)
    engine_ready = Signal(dict)
    engine_died = Signal(dict)
    state_changed = Signal(str)
    #: Every event after routing (one place to listen for "anything about my request").
    event = Signal(dict)
    #: The same event decoded into its contract type (``deepnoise_engine.contract.events``).
    typed_event = Signal(object)

    # Internal: reader thread -> main thread hop (queued connection).
    _posted = Signal(int, str, object)

    def __init__(
        self,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        start_timeout: float = 120.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._command = list(command) if command else None
        self._env = env
        self._cwd = cwd
        self._start_timeout = start_timeout
        self._client: Any = None
        self._generation = 0  # bumped on every (re)start; stale threads' posts are dropped
        self._state = STOPPED
        self._hello: dict = {}
        self._ids = itertools.count(1)
        self._pending: list[tuple[str, str, dict]] = []  # (local id, type, params)
        self._engine_to_local: dict[str, str] = {}  # engine request id -> bridge id
        self._job_to_local: dict[str, str] = {}  # engine job id -> bridge id
        self._local_to_job: dict[str, str] = {}
        self._open_requests: dict[str, str] = {}  # bridge id -> request type, until it ends
        self._cancel_asap: set[str] = set()  # cancelled before the engine accepted them
        self._stop = threading.Event()
        self._posted.connect(self._on_posted, Qt.ConnectionType.QueuedConnection)

    # -- public state ----------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def hello(self) -> dict:
        """The engine's hello result (empty until ready)."""
        return dict(self._hello)

    @property
    def devices(self) -> list[dict]:
        """Devices the engine offers (``[{"name", "type", "memory_bytes"}]``) from hello."""
        return list(self._hello.get("devices") or [])

    @property
    def pid(self) -> int | None:
        """The engine process id, when one runs."""
        client = self._client
        proc = getattr(client, "process", None) or getattr(client, "_proc", None)
        pid = getattr(client, "pid", None) or getattr(proc, "pid", None)
        return int(pid) if pid else None

    def job_id(self, request: str) -> str | None:
        """The engine job id of a bridge request (known once ``accepted`` arrived)."""
        return self._local_to_job.get(request)

    def open_requests(self) -> dict[str, str]:
        """Bridge ids of requests that have not ended yet -> request type."""
        return dict(self._open_requests)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start the engine in the background (no-op while it starts or runs)."""
        if self._state in (STARTING, READY):
            return
        self._generation += 1
        self._stop = threading.Event()
        self._set_state(STARTING)
        gen, stop = self._generation, self._stop
        thread = threading.Thread(
            target=self._run, args=(gen, stop), name=f"deepnoise-engine-reader-{gen}", daemon=True
        )
        thread.start()

    def restart(self) -> None:
        """Stop (or clean up after) the current engine and start a fresh one."""
        self._teardown(graceful=self._state == READY)
        self._set_state(STOPPED)
        self.start()

    def shutdown(self, timeout: float = 3.0) -> None:
        """Ask the engine to stop (cancels running work), kill it after ``timeout`` s."""
        self._teardown(graceful=True, timeout=timeout)
        self._set_state(STOPPED)

    def _teardown(self, graceful: bool, timeout: float = 3.0) -> None:
        client, self._client = self._client, None
        self._stop.set()
        self._generation += 1  # ignore anything the old reader still posts
        self._pending.clear()
        self._open_requests.clear()
        if client is None:
            return
        try:
            if graceful and getattr(client, "alive", False):
                client.shutdown(timeout=timeout)
        except Exception:
            pass
        try:
            if getattr(client, "alive", False):
                client.kill()
        except Exception:
            pass

    # -- requests --------------------------------------------------------------------
    def submit(self, type: str, **params: Any) -> str:
        """Send a request (quick or job); returns the bridge request id at once.

        Starts the engine when it is not running; requests wait in a queue until the
        engine is ready. Failures to send come back as an ``error`` event for that id.
        """
        local = f"r{next(self._ids)}"
        self._open_requests[local] = type
        if self._state in (STOPPED, DEAD):
            self._pending.append((local, type, params))
            self.start()
        elif self._state == STARTING:
            self._pending.append((local, type, params))
        else:
            self._send(local, type, params)
        return local

    def cancel(self, job_or_request: str) -> None:
        """Cancel a job, given its engine job id or the bridge request id."""
        for i, (local, _type, _params) in enumerate(self._pending):
            if local == job_or_request:  # never sent: drop it and say so
                del self._pending[i]
                self._open_requests.pop(local, None)
                self._emit({"event": "cancelled", "request": local, "job": None})
                return
        job = self._local_to_job.get(job_or_request)
        if job is None and job_or_request in self._open_requests:
            self._cancel_asap.add(job_or_request)  # not accepted yet: cancel on accepted
            return
        job = job or job_or_request
        client = self._client
        if client is None or self._state != READY:
            return

        def _cancel() -> None:  # the client waits for the answer: keep the UI free
            with contextlib.suppress(Exception):  # gone already / engine died (reported)
                client.cancel(job)

        threading.Thread(target=_cancel, name="deepnoise-engine-cancel", daemon=True).start()

    def _send(self, local: str, type: str, params: dict) -> None:
        client = self._client
        try:
            engine_id = client.submit(type, **params)
        except Exception as exc:
            self._open_requests.pop(local, None)
            self._emit(
                {
                    "event": "error",
                    "request": local,
                    "job": None,
                    "kind": "engine_died" if _is_died_error(exc) else "send_failed",
                    "message": f"could not send {type!r} to the engine: {exc}",
                }
            )
            return
        self._engine_to_local[str(engine_id)] = local

    # -- reader thread ---------------------------------------------------------------
    def _run(self, gen: int, stop: threading.Event) -> None:
        """Start the client, then relay its events until it dies or we stop."""
        try:
            kwargs: dict[str, Any] = {}
            if self._command:
                kwargs["command"] = self._command
            if self._env is not None:
                kwargs["env"] = self._env
            if self._cwd is not None:
                kwargs["cwd"] = str(self._cwd)
            client = _client_class()(**kwargs)
            self._posted.emit(gen, "client", client)
            hello = client.start(timeout=self._start_timeout)
        except Exception as exc:
            self._posted.emit(gen, "start_failed", exc)
            return
        self._posted.emit(gen, "ready", hello)
        while not stop.is_set():
            try:
                event = client.next_event(timeout=0.5)
            except TimeoutError:
                continue  # the client posts engine_died within 2 s of a death
            except Exception as exc:
                if not stop.is_set():
                    self._posted.emit(gen, "died", exc)
                return
            if event is None:
                continue
            if event.get("event") == "engine_died":
                if not stop.is_set():
                    self._posted.emit(gen, "died", event)
                return
            self._posted.emit(gen, "event", event)

    @Slot(int, str, object)
    def _on_posted(self, gen: int, kind: str, payload: object) -> None:
        if gen != self._generation:
            if kind == "client":  # a start that lost a restart race: do not leak it
                with contextlib.suppress(Exception):
                    payload.kill()  # type: ignore[union-attr]
            return
        if kind == "client":
            self._client = payload
        elif kind == "ready":
            self._hello = dict(payload or {})  # type: ignore[arg-type]
            self._set_state(READY)
            self.engine_ready.emit(self.hello)
            pending, self._pending = self._pending, []
            for local, type, params in pending:
                self._send(local, type, params)
        elif kind == "start_failed":
            self._died(payload, starting=True)
        elif kind == "died":
            self._died(payload)
        elif kind == "event":
            self._route(dict(payload))  # type: ignore[arg-type]

    def _died(self, payload: object, starting: bool = False) -> None:
        if isinstance(payload, dict):
            returncode = payload.get("returncode")
            tail = payload.get("stderr_tail") or ""
            detail = payload.get("message") or ""
        else:
            returncode = getattr(payload, "returncode", None)
            tail = getattr(payload, "stderr_tail", "") or ""
            detail = str(payload)
        if isinstance(tail, list | tuple):
            tail = "\n".join(str(x) for x in tail)
        what = "could not start" if starting else "stopped unexpectedly"
        first = detail.strip().splitlines()[0] if detail.strip() else ""
        message = f"The engine {what}: {first}" if first else f"The engine {what}"
        if returncode == -9:
            message += " (SIGKILL: killed by the system, e.g. out of memory, or by hand)"
        info = {
            "event": "engine_died",
            "returncode": returncode,
            "stderr_tail": str(tail),
            "message": message.rstrip(".") + ". Restart the engine to continue.",
            "requests": dict(self._open_requests),
        }
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.kill()
        self._open_requests.clear()
        self._pending.clear()
        self._hello = {}
        self._set_state(DEAD)
        self.engine_died.emit(info)

    def _route(self, event: dict) -> None:
        """Fill ``request`` with the bridge id (from the engine id or the job id) and emit."""
        job = event.get("job")
        engine_req = event.get("request")
        local = self._engine_to_local.get(str(engine_req)) if engine_req is not None else None
        if local is None and job is not None:
            local = self._job_to_local.get(str(job))
        if local is not None and job is not None and str(job) not in self._job_to_local:
            self._job_to_local[str(job)] = local
            self._local_to_job[local] = str(job)
            if local in self._cancel_asap:
                self._cancel_asap.discard(local)
                self.cancel(local)
        event["engine_request"] = engine_req
        event["request"] = local
        name = event.get("event")
        quick_result = name == "result" and job is None
        if name in ("finished", "cancelled") or quick_result:
            self._open_requests.pop(local or "", None)
        if name == "error" and (job is None or local not in self._local_to_job):
            self._open_requests.pop(local or "", None)
        self._emit(event)

    def _emit(self, event: dict) -> None:
        name = event.get("event")
        if name in _EVENT_SIGNALS:
            getattr(self, name).emit(event)
        self.event.emit(event)
        try:
            typed = parse_event(event)
        except ValidationError as exc:  # an engine of another version: the dict still went
            log.warning("event %r does not match the contract: %s", name, exc)
        else:
            self.typed_event.emit(typed)

    def ask(self, type: str, timeout: float = 30.0, **params: Any) -> Any:
        """Send a quick request and wait (Qt events keep flowing) for its result.

        For answers a dialog needs before it can show anything (presets, the default
        split). Starts the engine when needed; raises ``EngineUnavailableError`` when it
        is not ready within ``timeout`` and the client's ``EngineRequestError`` on an
        ``error`` answer.
        """
        if self._state in (STOPPED, DEAD):
            self.start()
        if not self.wait_ready(timeout) or self._client is None:
            raise EngineUnavailableError(f"the engine is not running ({self._state})")
        return self._client.request(type, timeout=timeout, **params)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block (processing Qt events) until ready or dead; for scripts and tests."""
        from qtpy.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._state == STARTING:
            QCoreApplication.processEvents()
            time.sleep(0.01)
        return self._state == READY
