"""The engine's job queue and the handlers behind each request type.

One compute job runs at a time in a worker thread; later jobs wait in a FIFO queue.
Handlers import the steps (torch, pandas, ...) lazily so the server starts fast. Every
job emits ``accepted`` at once, ``started`` when it runs, then any number of
``progress``/``metrics``/``log`` events, and ends with exactly one of
``result``/``error``/``cancelled`` followed by ``finished {status}``.
"""

from __future__ import annotations

import collections
import gc
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.serve.protocol import ProtocolError, Request, make_event, to_jsonable

Emit = Callable[[dict[str, Any]], None]
log = logging.getLogger(__name__)

#: Seconds between two progress events of one job (the last one of a stage always goes out).
PROGRESS_INTERVAL_S = 0.2
#: Finished jobs kept for ``list_jobs``.
HISTORY = 100


class JobCancelled(Exception):
    """Raised by a handler (or ``JobContext.check_cancel``) to stop at a safe point."""


# --- errors --------------------------------------------------------------------------------

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
            fields[name] = value
    if isinstance(exc, DiskFullError):
        fields.update(path=exc.path, space_needed=exc.needed, space_free=exc.free)
    return fields


# --- jobs ---------------------------------------------------------------------------------


@dataclass
class Job:
    """One submitted job; ``status`` is queued, running, succeeded, failed or cancelled."""

    id: str
    request: str
    type: str
    params: dict[str, Any]
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


class JobContext:
    """What a handler gets: the cancel event and ways to report progress, metrics and logs."""

    def __init__(self, job: Job, emit: Emit):
        self.job = job
        self._emit = emit
        self._last_progress = 0.0
        self._stage: str | None = None
        self._stage_t0 = time.monotonic()

    @property
    def cancel(self) -> threading.Event:
        return self.job.cancel

    def check_cancel(self) -> None:
        if self.job.cancel.is_set():
            raise JobCancelled()

    def emit(self, event: str, **fields: Any) -> None:
        self._emit(make_event(event, job=self.job.id, request=self.job.request, **fields))

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=str(message))

    def metrics(self, record: dict[str, Any]) -> None:
        self.emit("metrics", record=to_jsonable(record))

    def progress(
        self, stage: str, done: float, total: float | None, eta_s: float | None = None
    ) -> None:
        """Report progress; throttled to one event per PROGRESS_INTERVAL_S per stage."""
        now = time.monotonic()
        if stage != self._stage:
            if self._stage is not None:  # the first stage is timed from the job's start
                self._stage_t0 = now
            self._stage, self._last_progress = stage, 0.0
        complete = total is not None and done >= total
        elapsed = now - self._stage_t0
        if eta_s is None and total and done and elapsed > 0.05:
            eta_s = elapsed / done * max(total - done, 0)
        fields = {"stage": stage, "done": done, "total": total, "eta_s": eta_s}
        self.job.progress = fields
        if not complete and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.emit("progress", **fields)

    def callback(self, default_stage: str) -> Callable[..., None]:
        """A progress callback for the steps: accepts an event dict (train's form),
        ``(done, total[, stage])`` positionally or ``done=, total=, stage=`` keywords."""

        def report(*args: Any, **kwargs: Any) -> None:
            try:
                if args and isinstance(args[0], dict):
                    event = dict(args[0])
                else:
                    names = ("done", "total", "stage")
                    event = {**dict(zip(names, args, strict=False)), **kwargs}
                name = event.pop("event", "progress")
                if name == "metrics":
                    self.metrics(event.get("record", event))
                elif name == "log":
                    self.log(event.get("message", ""), event.get("level", "info"))
                else:
                    self.progress(
                        str(event.get("stage") or default_stage),
                        event.get("done", 0) or 0,
                        event.get("total"),
                        event.get("eta_s"),
                    )
            except Exception as exc:  # reporting must never break the step
                log.warning("unreadable progress report %r %r: %s", args, kwargs, exc)

        return report


Handler = Callable[[JobContext, dict[str, Any]], Any]


class JobManager:
    """A FIFO of jobs run one at a time by a worker thread; events go to ``emit``."""

    def __init__(self, emit: Emit, handlers: dict[str, Handler] | None = None):
        self._emit = emit
        self.handlers = dict(JOB_HANDLERS if handlers is None else handlers)
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
            job = Job(
                id=f"job-{next(self._ids)}",
                request=request.id,
                type=request.type,
                params=request.params,
            )
            self._jobs[job.id] = job
            self._queue.append(job)
            position = len(self._queue) - 1 + (self._current is not None)
            self._emit(
                make_event(
                    "accepted",
                    job=job.id,
                    request=job.request,
                    type=job.type,
                    queue_position=position,
                )
            )
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
        ctx = JobContext(job, self._emit)
        ctx.emit("started", type=job.type)
        try:
            result = self.handlers[job.type](ctx, job.params)
        except JobCancelled:
            with self._lock:
                self._end(job, "cancelled", None)
        except Cancelled as exc:  # the step's partial result goes out with the event
            with self._lock:
                self._end(job, "cancelled", to_jsonable(exc.partial) or None)
        except BaseException as exc:  # report every failure, keep serving
            log.warning("job %s (%s) failed: %s", job.id, job.type, exc)
            with self._lock:
                self._end(job, "failed", error_fields(exc))
        else:
            # Only the step says whether it stopped early: a step that finished its work
            # despite a late cancel (export) reports success, truthfully.
            cancelled = isinstance(result, dict) and bool(result.get("cancelled"))
            with self._lock:
                self._end(job, "cancelled" if cancelled else "succeeded", to_jsonable(result))
        release_gpu_memory()  # the exception (and its frames' tensors) is gone by now

    def _end(self, job: Job, status: str, payload: Any) -> None:
        """Emit the terminal events of ``job`` (caller holds the lock or owns the job)."""
        job.status, job.ended = status, time.time()
        if status == "succeeded":
            self._emit(make_event("result", job=job.id, request=job.request, result=payload))
        elif status == "failed":
            self._emit(make_event("error", job=job.id, request=job.request, **payload))
        else:
            self._emit(make_event("cancelled", job=job.id, request=job.request, result=payload))
        self._emit(make_event("finished", job=job.id, request=job.request, status=status))
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
            self.manager._emit(
                make_event(
                    "log",
                    job=job.id,
                    request=job.request,
                    level=record.levelname.lower(),
                    message=record.getMessage(),
                    logger=record.name,
                )
            )
        except Exception:
            self.handleError(record)


# --- handlers -----------------------------------------------------------------------------


def _open_screen(data: str, **kwargs: Any) -> Any:
    from deepnoise_engine.screen.open import open_screen

    return open_screen(data, **kwargs)


def inspect_screen(params: dict[str, Any]) -> dict[str, Any]:
    """Quick request ``inspect``: H1's summary of the screen at ``data``."""
    from deepnoise_engine.screen.inspect import summarize_screen

    screen = _open_screen(params["data"], check_images=params.get("check_images", True))
    limit = params.get("max_problems")
    limit = 20 if limit is None else (None if limit < 0 else limit)  # < 0: every problem
    return to_jsonable(summarize_screen(screen, max_problems=limit))


def handle_pack(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from deepnoise_engine.screen.pack_cache import pack_screen

    ctx.progress("open", 0, 1)
    screen = _open_screen(params["data"])
    ctx.check_cancel()
    cache = pack_screen(screen, params.get("out"), progress=ctx.callback("pack"), cancel=ctx.cancel)
    sites = cache.sites
    last = getattr(cache, "last_pack", None)
    result: dict[str, Any] = {
        "out": str(cache.folder),
        "sites": len(sites),
        "ok_sites": int(sites["ok"].sum()) if "ok" in sites.columns else None,
        "problems": len(screen.problems),
        "cancelled": bool(getattr(last, "cancelled", False)),
    }
    if last is not None and hasattr(last, "to_dict"):
        result["pack"] = last.to_dict()
    return result


def handle_make_demo(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from deepnoise_engine.screen.synthetic import make_demo

    options = {k: v for k, v in params.items() if k != "out" and v is not None}
    if "cell_types" in options:
        options["cell_types"] = tuple(options["cell_types"])
    try:
        path = make_demo(
            params["out"], progress=ctx.callback("make_demo"), cancel=ctx.cancel, **options
        )
    except InterruptedError:
        raise JobCancelled() from None  # make_demo left ``out`` untouched
    return {"out": str(path)}


def _device_overrides(device: str | None) -> list[str]:
    return [f"runtime.device={device}"] if device else []


def handle_train(ctx: JobContext, params: dict[str, Any]) -> Any:
    from deepnoise_engine.workflows.train import run_training

    overrides = list(params.get("overrides") or []) + _device_overrides(params.get("device"))
    kwargs = {k: params[k] for k in ("preset", "config_file") if params.get(k) is not None}
    return run_training(
        params["data"],
        params["out"],
        overrides=tuple(overrides),
        resume=False,
        reporter=Reporter(ctx.callback("train"), ctx.cancel),
        **kwargs,
    )


def _run_data(out: str) -> str:
    """The screen a run folder was trained on (``data`` recorded in run.json), if any."""
    run_json = Path(out) / "run.json"
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = {}
    for key in ("data", "screen", "data_path"):
        if isinstance(run, dict) and isinstance(run.get(key), str):
            return run[key]
    raise ProtocolError(
        "bad_request", f"{out}: the run folder does not record its screen; pass 'data'"
    )


def handle_resume(ctx: JobContext, params: dict[str, Any]) -> Any:
    """Continue a run from its last checkpoint with its own config.toml."""
    from deepnoise_engine.workflows.train import run_training

    out = Path(params["out"])
    config = out / "config.toml"
    if not config.is_file():
        raise FileNotFoundError(f"{config}: not a training run folder (no config.toml)")
    data = params.get("data") or _run_data(params["out"])
    return run_training(
        data,
        out,
        preset=None,
        config_file=config,
        resume=True,
        overrides=tuple(_device_overrides(params.get("device"))),
        reporter=Reporter(ctx.callback("train"), ctx.cancel),
    )


def handle_score(ctx: JobContext, params: dict[str, Any]) -> Any:
    from deepnoise_engine.workflows.score import run_scoring

    kwargs = {
        k: params[k]
        for k in ("plates", "balance", "tta", "submission", "overwrite", "batch_size", "device")
        if params.get(k) is not None
    }
    return run_scoring(
        params["data"],
        params["models"],
        params["out"],
        reporter=Reporter(ctx.callback("score"), ctx.cancel),
        **kwargs,
    )


def handle_export(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from deepnoise_engine.report.export import export_reports

    kwargs = {
        k: params[k]
        for k in ("plates", "submission", "figures", "overwrite")
        if params.get(k) is not None
    }
    ctx.progress("export", 0, 1)
    files = export_reports(params["score_dir"], params["out"], **kwargs)
    ctx.progress("export", 1, 1)
    return {"out": params["out"], "files": [str(p) for p in files]}


def handle_qc(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from deepnoise_engine.qc.job import run_qc

    kwargs = {k: params[k] for k in ("out", "overwrite", "block", "seed")
              if params.get(k) is not None}
    return run_qc(params["score_dir"], reporter=Reporter(ctx.callback("qc"), ctx.cancel),
                  **kwargs)


class OutOfMemoryError(RuntimeError):
    """Stand-in with torch.cuda.OutOfMemoryError's name (the diagnostic ``sleep`` job)."""


def handle_sleep(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Diagnostic: sleep ``seconds`` in ``steps`` cancellable steps; optionally fail or
    print ``say`` to stdout (which the server redirects to stderr)."""
    seconds = float(params.get("seconds", 1.0))
    steps = max(int(params.get("steps", 10)), 1)
    fail = params.get("fail")
    if params.get("say"):  # stray output: must end up on stderr, never in the protocol
        print(params["say"])
        os.write(1, (params["say"] + "\n").encode())
    for i in range(steps):
        if ctx.cancel.wait(seconds / steps):
            return {"cancelled": True, "done": i}
        ctx.progress("sleep", i + 1, steps)
        if fail == "error":
            raise ValueError("diagnostic failure")
        if fail == "out_of_memory":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (diagnostic)")
        if fail == "cuda_out_of_memory":
            raise OutOfMemoryError("CUDA out of memory (diagnostic)")
        if fail == "screen":
            from deepnoise_engine.screen.errors import MissingImageError

            raise MissingImageError("image missing (diagnostic)", file="train.csv", row=7)
    return {"slept_s": seconds, "steps": steps}


JOB_HANDLERS: dict[str, Handler] = {
    "pack": handle_pack,
    "make_demo": handle_make_demo,
    "train": handle_train,
    "resume": handle_resume,
    "score": handle_score,
    "export": handle_export,
    "qc": handle_qc,
    "sleep": handle_sleep,
}


# --- describe_model (torch-free: reads the checkpoint JSON only) ------------------------

_VAL_KEYS = (
    "val_acc_ensemble_balanced",
    "val_acc_teacher_balanced",
    "val_acc_student_balanced",
    "val_acc_ensemble_raw",
    "val_acc_teacher_raw",
    "val_acc_student_raw",
    "val_acc",
)


def _val_accuracy(metrics: dict[str, Any], name: str | None, role: str | None) -> float | None:
    """The model's own validation accuracy (plate-balanced first) from a metrics record."""
    per_model = metrics.get("per_model")
    own = per_model.get(name) if isinstance(per_model, dict) and name else None
    keys = [f"val_acc_{role}_balanced", f"val_acc_{role}_raw"] if role else []
    for source in (own, metrics):
        if isinstance(source, dict):
            for key in (*keys, *_VAL_KEYS):
                if isinstance(source.get(key), (int, float)):
                    return float(source[key])
    return None


def _describe_checkpoint(stem: Path) -> dict[str, Any]:
    from deepnoise_engine.model.checkpoint import checkpoint_stem, read_metadata

    meta = read_metadata(stem)
    arch = meta.get("architecture")
    name = arch.get("name") if isinstance(arch, dict) else arch
    norm = meta.get("normalisation")
    mode = norm.get("mode") if isinstance(norm, dict) else norm
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    classes = meta.get("classes") or []
    head = meta.get("head")
    role = meta.get("role")
    return {
        "path": str(checkpoint_stem(stem)),
        "architecture": name,
        "architecture_params": arch,
        "head": head.get("type") if isinstance(head, dict) else head,
        "role": role,
        "stage": meta.get("stage"),
        "classes_count": len(classes),
        "classes": classes,
        "channels": meta.get("channels"),
        "in_chans": meta.get("in_chans"),
        "normalisation": mode,
        "image_size": meta.get("image_size"),
        "validation_accuracy": _val_accuracy(metrics, name, role),
        "validation_accuracy_ensemble": next(
            (
                metrics[k]
                for k in ("val_acc_ensemble_balanced", "val_acc_ensemble_raw")
                if isinstance(metrics.get(k), (int, float))
            ),
            None,
        ),
        "cell_types": meta.get("cell_types"),
        "engine_version": meta.get("engine_version"),
        "created": meta.get("created"),
    }


def describe_model(params: dict[str, Any]) -> dict[str, Any]:
    """Quick request ``describe_model``: a checkpoint or a train run folder (run.json).

    Torch-free: reads run.json and the checkpoints' JSON metadata (H3's readers).
    """
    from deepnoise_engine.model.checkpoint import resolve_models

    path = Path(params["path"])
    ensembles = resolve_models(path)  # raises CheckpointError naming the file
    models: dict[str, dict[str, Any]] = {}
    serves: dict[str, list[str]] = {}
    for cell_type, stems in ensembles.items():
        for stem in stems:
            info = models.get(str(stem)) or _describe_checkpoint(stem)
            models[str(stem)] = info
            serves.setdefault(cell_type, []).append(info["path"])
    first = next(iter(models.values()))
    accs = [
        m["validation_accuracy"] for m in models.values() if m["validation_accuracy"] is not None
    ]
    cell_types = sorted(
        {c for m in models.values() for c in (m["cell_types"] or [])}
        | {c for c in serves if c != "*"}
    )
    return {
        "kind": "run" if path.is_dir() else "checkpoint",
        "path": str(path),
        "architecture": sorted({str(m["architecture"]) for m in models.values()}),
        "classes_count": first["classes_count"],
        "classes": first["classes"],
        "channels": first["channels"],
        "normalisation": first["normalisation"],
        "image_size": first["image_size"],
        "validation_accuracy": max(accs) if accs else None,
        "cell_types": cell_types,
        "serves": serves,
        "models": list(models.values()),
    }
