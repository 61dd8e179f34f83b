"""The engine process: reads requests from stdin, writes events to stdout (JSON lines).

The main thread reads and dispatches requests; quick requests that touch the disk
(``inspect``, ``describe_model``) answer from short-lived threads so a slow screen never
blocks ``cancel``; compute requests go to the :class:`JobManager`. Every event goes
through :meth:`Server.emit`, which serialises writes with a lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import sys
import threading
from typing import IO, Any

from deepnoise_engine import __version__
from deepnoise_engine.contract.events import Result
from deepnoise_engine.contract.requests import CancelParams, ShutdownParams
from deepnoise_engine.serve.errors import error_event, error_fields
from deepnoise_engine.serve.handlers import QUICK_HANDLERS
from deepnoise_engine.serve.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    REQUESTS,
    ProtocolError,
    Request,
    encode,
    event_dict,
    parse_request,
)
from deepnoise_engine.serve.queue import JobLogHandler, JobManager

log = logging.getLogger(__name__)

#: Seconds the engine waits for running work to stop when its stdin closes.
SHUTDOWN_WAIT_S = 10.0

_ID_RE = re.compile(rb'"id"\s*:\s*"([^"\\]{1,200})"')


def read_request_line(stream: IO[bytes]) -> tuple[bytes | None, bool]:
    """Read one line of at most MAX_LINE_BYTES: ``(line, too_large)``; ``(None, False)`` at EOF.

    An oversized line is consumed to its end in chunks (never held in memory whole) and
    returned as its first chunk with ``too_large=True``.
    """
    limit = MAX_LINE_BYTES + 2  # room for "\r\n"
    line = stream.readline(limit)
    if not line:
        return None, False
    if line.endswith(b"\n") or len(line) < limit:
        return line, len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES
    head = line
    while True:  # drain the rest of the oversized line
        chunk = stream.readline(1 << 16)
        if not chunk or chunk.endswith(b"\n"):
            return head, True


def _gpu_possible() -> bool:
    """False only where no GPU driver is present (Linux device nodes), so ``hello`` need
    not import torch (about a second) on CPU-only machines."""
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return True
    nodes = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
    return any(os.path.exists(p) for p in nodes)


def _devices() -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """(torch version, CUDA version, devices); called once, on the first ``hello``."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        memory = None
    cores = os.cpu_count() or 1
    devices: list[dict[str, Any]] = [
        {"id": "cpu", "name": f"CPU ({cores} cores)", "type": "cpu", "memory_bytes": memory}
    ]
    if not _gpu_possible():
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("torch"), None, devices
        except PackageNotFoundError:
            return None, None, devices
    try:
        import torch
    except ImportError:
        return None, None, devices
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                devices.append(
                    {
                        "id": f"cuda:{i}",
                        "name": props.name,
                        "type": "cuda",
                        "memory_bytes": int(props.total_memory),
                    }
                )
    except Exception as exc:  # a broken driver must not break hello
        log.warning("CUDA devices could not be listed: %s", exc)
    return torch.__version__, torch.version.cuda, devices


class Server:
    """Serves one client over a pair of byte streams until EOF or ``shutdown``."""

    def __init__(
        self, instream: IO[bytes], outstream: IO[bytes], handlers: dict[str, Any] | None = None
    ):
        self._in = instream
        self._out = outstream
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self._hello: dict[str, Any] | None = None
        self._hello_lock = threading.Lock()
        self.jobs = JobManager(self.emit, handlers)
        self.exit_code = 0
        self._request_ids: set[str] = set()  # a reused id would mix two requests' events

    # -- output ------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Write one event line; a closed stdout (client gone) stops the server."""
        data = encode(event)
        with self._write_lock:
            try:
                self._out.write(data)
                self._out.flush()
            except (OSError, ValueError):
                self._stopping.set()

    def _result(self, request: Request, result: Any) -> None:
        self.emit(event_dict(Result(request=request.id, type=request.type, result=result)))

    def _error(self, request_id: str | None, fields: dict[str, Any]) -> None:
        self.emit(error_event(fields, request=request_id))

    # -- main loop ---------------------------------------------------------------------

    def serve(self) -> int:
        """Read and dispatch requests until EOF or ``shutdown``; returns the exit code."""
        while not self._stopping.is_set():
            try:
                line, too_large = read_request_line(self._in)
            except (OSError, ValueError):
                break
            if line is None:
                log.info("stdin closed: stopping")
                self.jobs.close(wait_s=SHUTDOWN_WAIT_S)
                break
            if too_large:
                match = _ID_RE.search(line[:4096])
                rid = match.group(1).decode("utf-8", "replace") if match else None
                self._error(
                    rid,
                    {
                        "kind": "too_large",
                        "message": f"request line longer than {MAX_LINE_BYTES} bytes was ignored",
                    },
                )
                continue
            if not line.strip():
                continue
            self.handle_line(line)
        return self.exit_code

    def handle_line(self, line: bytes) -> None:
        """Parse and dispatch one request line; every fault becomes an ``error`` event."""
        try:
            request = parse_request(line)
        except ProtocolError as exc:
            self._error(exc.request_id, {"kind": exc.kind, "message": exc.message})
            return
        if request.id is not None and request.id in self._request_ids:
            self._error(request.id, {"kind": "duplicate_request", "message":
                                     f"request id {request.id!r} was already used in this "
                                     "session; give every request a new id"})
            return
        if request.id is not None:
            self._request_ids.add(request.id)
        try:
            self.dispatch(request)
        except ProtocolError as exc:
            self._error(request.id, {"kind": exc.kind, "message": exc.message})
        except Exception as exc:  # a bug in a quick request must not stop the engine
            log.exception("request %s (%s) failed", request.id, request.type)
            self._error(request.id, error_fields(exc))

    def dispatch(self, request: Request) -> None:
        rtype = request.type
        if REQUESTS[rtype].job:
            self.jobs.submit(request)
        elif rtype == "hello":
            self._result(request, self.hello())
        elif rtype == "list_jobs":
            self._result(request, {"jobs": self.jobs.list()})
        elif rtype == "cancel":
            assert isinstance(request.model, CancelParams)
            self._result(request, self.jobs.cancel(request.model.job))
        elif rtype == "echo":
            self._result(request, {"params": request.params})
        elif rtype == "shutdown":
            self.shutdown(request)
        elif rtype in QUICK_HANDLERS:
            threading.Thread(
                target=self._answer_threaded,
                args=(request,),
                name=f"deepnoise-{rtype}",
                daemon=True,
            ).start()
        else:  # pragma: no cover - REQUESTS and dispatch out of step
            raise ProtocolError("unknown_request", f"request type {rtype!r} has no handler")

    def _answer_threaded(self, request: Request) -> None:
        try:
            result = QUICK_HANDLERS[request.type](request.model)
        except Exception as exc:
            self._error(request.id, error_fields(exc))
        else:
            self._result(request, result)

    def shutdown(self, request: Request) -> None:
        """Cancel queued and running work, wait up to ``wait_s``, answer, then stop reading."""
        assert isinstance(request.model, ShutdownParams)
        stopped = self.jobs.close(wait_s=request.model.wait_s)
        self._result(request, {"stopped": stopped})
        self._stopping.set()

    def hello(self) -> dict[str, Any]:
        with self._hello_lock:
            if self._hello is None:
                torch_version, cuda_version, devices = _devices()
                self._hello = {
                    "protocol": PROTOCOL_VERSION,
                    "engine": "deepnoise-engine",
                    "engine_version": __version__,
                    "python": platform.python_version(),
                    "torch": torch_version,
                    "cuda": cuda_version,
                    "devices": devices,
                    "pid": os.getpid(),
                    "platform": sys.platform,
                    "requests": sorted(k for k, s in REQUESTS.items() if not s.diagnostic),
                }
            return dict(self._hello)


def run_stdio() -> int:
    """Serve on this process's stdin/stdout. Anything else printed to fd 1 goes to stderr."""
    sys.stdout.flush()
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (ours, C libraries') can never corrupt the protocol
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = Server(sys.stdin.buffer, protocol_out)
    handler = JobLogHandler(server.jobs)
    logging.getLogger().addHandler(handler)
    log.info(
        "deepnoise engine %s serving protocol v%d (pid %d)",
        __version__,
        PROTOCOL_VERSION,
        os.getpid(),
    )
    try:
        return server.serve()
    finally:
        logging.getLogger().removeHandler(handler)
        with contextlib.suppress(OSError):
            protocol_out.flush()
