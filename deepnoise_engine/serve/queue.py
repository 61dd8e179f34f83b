"""The engine's job queue: one job at a time in a worker thread, later jobs wait (FIFO).

Every job emits ``accepted`` at once, ``started`` when it runs, then any number of
``progress``/``metrics``/``log`` events, and ends with exactly one of
``result``/``error``/``cancelled`` followed by ``finished {status}``. A handler reports
through a :class:`JobReporter` and stops early by raising
:class:`deepnoise_engine.contract.Cancelled`.
"""

from __future__ import annotations

import collections
import gc
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.contract import events as ev
from deepnoise_engine.contract.requests import Params
from deepnoise_engine.serve.errors import error_event, error_fields
from deepnoise_engine.serve.protocol import (
    ProtocolError,
    Request,
    event_dict,
    make_event,
    to_jsonable,
)

Emit = Callable[[dict[str, Any]], None]
log = logging.getLogger(__name__)

#: Seconds between two progress events of one job (the last one of a stage always goes out).
PROGRESS_INTERVAL_S = 0.2
#: Finished jobs kept for ``list_jobs``.
HISTORY = 100


@dataclass
class Job:
    """One submitted job; ``status`` is queued, running, succeeded, failed or cancelled."""

    id: str
    request: str
    type: str
    params: dict[str, Any]
    model: Params
    status: str = "queued"
    cancel: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    progress: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-safe description for ``list_jobs``."""
        status = self.status
        if status == "running" and self.cancel.is_set():
            status = "cancelling"
        return {
            "job": self.id,
            "request": self.request,
            "type": self.type,
            "status": status,
            "params": self.params,
            "submitted": self.submitted,
            "started": self.started,
            "ended": self.ended,
            "progress": self.progress,
        }


class JobReporter(Reporter):
    """The reporter a handler gets: its events go out with the job's and request's ids.

    Progress is throttled to one event per PROGRESS_INTERVAL_S (the last of a stage
    always goes out) and remembered for ``list_jobs``; cancel is the job's cancel event.
    """

    def __init__(self, job: Job, emit: Emit) -> None:
        super().__init__(sink=self._send, cancel=job.cancel)
        self.job = job
        self._emit = emit
        self._last_progress = 0.0
        self._progress_stage: str | None = None

    def event(self, name: str, **fields: Any) -> None:
        """Emit one event of this job."""
        self._emit(make_event(name, job=self.job.id, request=self.job.request, **fields))

    def _send(self, event: dict[str, Any]) -> None:
        fields = dict(event)
        name = fields.pop("event")
        if name == "metrics":
            self.event("metrics", record=to_jsonable(fields.get("record", fields)))
        elif name == "progress":
            self._progress(fields)
        else:
            self.event(name, **fields)

    def _progress(self, fields: dict[str, Any]) -> None:
        now = time.monotonic()
        if fields["stage"] != self._progress_stage:
            self._progress_stage, self._last_progress = fields["stage"], 0.0
        self.job.progress = fields
        total = fields.get("total")
        complete = total is not None and fields["done"] >= total
        if not complete and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.event("progress", **fields)


Handler = Callable[[JobReporter, Any], Any]


class JobManager:
    """A FIFO of jobs run one at a time by a worker thread; events go to ``emit``."""

    def __init__(self, emit: Emit, handlers: dict[str, Handler] | None = None):
        if handlers is None:
            from deepnoise_engine.serve.handlers import JOB_HANDLERS as handlers
        self._emit = emit
        self.handlers = dict(handlers)
        self._lock = threading.Condition()
        self._queue: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._history: collections.deque[str] = collections.deque()
        self._current: Job | None = None
        self._closed = False
        self._ids = itertools.count(1)
        self._worker = threading.Thread(target=self._run, name="deepnoise-job-worker", daemon=True)
        self._worker.start()

    @property
    def current(self) -> Job | None:
        return self._current

    def is_worker_thread(self) -> bool:
        return threading.current_thread() is self._worker

    def submit(self, request: Request) -> Job:
        """Queue a job for ``request`` and emit ``accepted`` (with the queue position)."""
        if request.type not in self.handlers:
            raise ProtocolError(
                "unknown_request", f"no job handler for {request.type!r}", request.id
            )
        with self._lock:
            if self._closed:
                raise ProtocolError("shutting_down", "the engine is shutting down", request.id)
            job = Job(id=f"job-{next(self._ids)}", request=request.id, type=request.type,
                      params=request.params, model=request.model)
            self._jobs[job.id] = job
            self._queue.append(job)
            position = len(self._queue) - 1 + (self._current is not None)
            self._emit(event_dict(ev.Accepted(job=job.id, request=job.request, type=job.type,
                                              queue_position=position)))
            self._lock.notify_all()
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job: a queued one is removed at once, a running one is asked to stop."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ProtocolError("not_found", f"no job {job_id!r}")
            if job.status == "queued":
                self._queue.remove(job)
                self._end(job, "cancelled", None)
                return {"job": job_id, "status": "cancelled"}
            if job.status == "running":
                job.cancel.set()
                return {"job": job_id, "status": "cancelling"}
            return {"job": job_id, "status": job.status}

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [to_jsonable(job.summary()) for job in self._jobs.values()]

    def close(self, wait_s: float = 10.0) -> bool:
        """Refuse new jobs, cancel queued and running ones; True when the worker is idle."""
        with self._lock:
            self._closed = True
            while self._queue:
                self._end(self._queue.popleft(), "cancelled", None)
            if self._current is not None:
                self._current.cancel.set()
            self._lock.notify_all()
        self._worker.join(timeout=max(wait_s, 0.0))
        return not self._worker.is_alive()

    # -- worker --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:
                    return  # closed and drained
                job = self._queue.popleft()
                job.status, job.started = "running", time.time()
                self._current = job
            self._execute(job)
            with self._lock:
                self._current = None

    def _execute(self, job: Job) -> None:
        reporter = JobReporter(job, self._emit)
        self._emit(event_dict(ev.Started(job=job.id, request=job.request, type=job.type)))
        try:
            result = self.handlers[job.type](reporter, job.model)
        except Cancelled as exc:
            # what the step finished goes out as the cancelled event's result (null when
            # it finished nothing), marked ``cancelled`` as the steps' results always were
            partial = {"cancelled": True, **to_jsonable(exc.partial)} if exc.partial else None
            with self._lock:
                self._end(job, "cancelled", partial)
        except BaseException as exc:  # report every failure, keep serving
            log.warning("job %s (%s) failed: %s", job.id, job.type, exc)
            with self._lock:
                self._end(job, "failed", error_fields(exc))
        else:
            # a step that finished its work despite a late cancel (export) reports
            # success, truthfully
            with self._lock:
                self._end(job, "succeeded", to_jsonable(result))
        release_gpu_memory()  # the exception (and its frames' tensors) is gone by now

    def _end(self, job: Job, status: str, payload: Any) -> None:
        """Emit the terminal events of ``job`` (caller holds the lock or owns the job)."""
        job.status, job.ended = status, time.time()
        ids: dict[str, Any] = {"job": job.id, "request": job.request}
        if status == "failed":
            self._emit(error_event(payload, **ids))
        elif status == "succeeded":
            self._emit(event_dict(ev.Result(**ids, result=payload)))
        else:
            self._emit(event_dict(ev.Cancelled(**ids, result=payload)))
        self._emit(event_dict(ev.Finished(**ids, status=status)))
        self._history.append(job.id)
        while len(self._history) > HISTORY:
            self._jobs.pop(self._history.popleft(), None)


def release_gpu_memory() -> None:
    """Return cached CUDA memory after a job (an OOM must not starve the next job)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_initialized():
            gc.collect()
            torch.cuda.empty_cache()
    except Exception as exc:  # never let cleanup break the queue
        log.warning("could not release GPU memory: %s", exc)


class JobLogHandler(logging.Handler):
    """Forwards log records made on the job worker thread as ``log`` events of the job."""

    def __init__(self, manager: JobManager, level: int = logging.INFO):
        super().__init__(level)
        self.manager = manager

    def emit(self, record: logging.LogRecord) -> None:
        job = self.manager.current
        if job is None or not self.manager.is_worker_thread():
            return
        try:
            self.manager._emit(make_event(
                "log", job=job.id, request=job.request, level=record.levelname.lower(),
                message=record.getMessage(), logger=record.name,
            ))
        except Exception:
            self.handleError(record)
