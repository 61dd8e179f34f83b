"""Train a screen: configuration, run folder, the screen's data, the plate prior
(balance) and the trainer (torch). ``run_training`` is what ``deepnoise-engine train``
and the engine's ``train``/``resume`` requests run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepnoise_engine.balance.plate_prior import PlatePrior
from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.train import config as cfgmod
from deepnoise_engine.train.data import build_screen_data, open_data
from deepnoise_engine.train.ddp import DistInfo, barrier, broadcast_object, init_from_env, shutdown
from deepnoise_engine.train.loop import Trainer
from deepnoise_engine.train.models import training_device
from deepnoise_engine.train.precheck import check_training_inputs
from deepnoise_engine.train.repeats import (
    RepeatReporter,
    finish_top_run,
    mark_top_run,
    read_run,
    repeat_config,
    repeat_folder,
)
from deepnoise_engine.train.run_folder import RunFolder, RunFolderError, prepare_run_folder

__all__ = ["RunFolderError", "run_training"]


def run_training(data: str | Path, out: str | Path, *, preset: str | None = "tiny",
                 config_file: str | Path | None = None, overrides: Sequence[str] = (),
                 resume: bool = False, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train on the screen at ``data`` into the run folder ``out`` (see docs/training.md).

    Returns ``{"cancelled": False, "out", "stage", "epochs_done", "ensembles", "final",
    ...}``; raises ``ConfigError`` / ``RunFolderError`` / ``TrainDataError`` on bad input
    before any training starts, and ``Cancelled`` (``partial``: the same dict with
    ``"cancelled": True``) after writing a resumable checkpoint when cancelled.
    """
    import torch

    cfg = cfgmod.resolve(preset, config_file, overrides)
    out = Path(out)
    want_cuda = cfg["runtime"]["device"] == "cuda" or (
        cfg["runtime"]["device"] == "auto" and torch.cuda.is_available())
    dist = init_from_env(want_cuda)
    threads_before = torch.get_num_threads()
    try:
        if cfg["runtime"]["threads"]:
            # process-wide: restored below (the engine server runs other jobs afterwards)
            torch.set_num_threads(cfg["runtime"]["threads"])
        device = training_device(cfg, dist.local_rank)
        screen, cache, do_resume = _open_inputs(data, out, cfg, resume, dist)
        sd = build_screen_data(screen, cache, cfg)
        prior = PlatePrior.from_wells(sd.wells, sd.classes)
        reporter = reporter or Reporter()
        if cfg["model"]["repeats"] == 1:
            return Trainer(cfg, sd, out, dist, device, reporter, prior).run(do_resume)
        return _train_repeats(cfg, sd, out, dist, device, reporter, prior, do_resume)
    finally:
        torch.set_num_threads(threads_before)
        shutdown(dist)


def _open_inputs(data: str | Path, out: Path, cfg: dict[str, Any], resume: bool,
                 dist: DistInfo) -> tuple[Any, Any, bool]:
    """Check the inputs, prepare the run folder (rank 0), open the screen and its pack
    cache; returns ``(screen, cache, resume from a checkpoint)``."""
    # inputs first (screen, labels, pack): a bad screen or a full disk creates no stub
    opened = check_training_inputs(data, out, resume) if dist.is_main else None
    do_resume = _prepare_folder(out, cfg, resume, dist)
    # rank 0 packs the screen first; the others then open the complete cache
    if opened is not None:
        screen, cache = opened
    barrier(dist)
    if not dist.is_main:
        screen, cache = open_data(data)
    return screen, cache, do_resume


def _prepare_folder(out: Path, cfg: dict[str, Any], resume: bool, dist: DistInfo) -> bool:
    """Create or check a run folder on rank 0; every rank learns whether to resume."""
    error = None
    do_resume = False
    if dist.is_main:
        try:
            do_resume = prepare_run_folder(out, cfg, resume)
        except RunFolderError as exc:
            error = exc
    if dist.enabled:
        error, do_resume = broadcast_object(dist, (error and str(error), do_resume))
        if error:
            raise RunFolderError(error)
    elif error:
        raise error
    return do_resume


def _train_repeats(cfg: dict[str, Any], sd: Any, out: Path, dist: DistInfo, device: Any,
                   reporter: Reporter, prior: PlatePrior, resume: bool) -> dict[str, Any]:
    """``model.repeats`` trainings one after the other (train/repeats.py): repeat 1 in
    ``out``, repeat k in ``out/repeats/k``; the top run.json completes last."""
    count = int(cfg["model"]["repeats"])
    first: dict[str, Any] = {}
    for k in range(1, count + 1):
        sub_cfg, folder = repeat_config(cfg, k), repeat_folder(out, k)
        sub_resume = resume if k == 1 else _prepare_folder(folder, sub_cfg, True, dist)
        trainer = Trainer(sub_cfg, sd, folder, dist, device, RepeatReporter(reporter, k, count),
                          prior)
        if k == 1:  # the top run.json says complete once every repeat is
            trainer.complete_status = "running"
        try:
            result = trainer.run(sub_resume)
        except Cancelled as exc:
            raise _cancelled_repeat(exc, out, k, dist) from None
        first = first or result
    return _finish(first, out, cfg, dist)


def _cancelled_repeat(exc: Cancelled, out: Path, k: int, dist: DistInfo) -> Cancelled:
    """A repeat's cancel as the whole run's: the top folder is what resumes."""
    if k > 1 and dist.is_main:
        mark_top_run(out, "cancelled")
    partial = dict(exc.partial or {})
    partial.update(out=str(out), repeat=k)
    if k > 1:  # the finished stages of the top folder (repeat 1), whose paths resume uses
        partial["ensembles"] = read_run(out).get("ensembles", {})
    return Cancelled(str(exc), partial)


def _finish(result: dict[str, Any], out: Path, cfg: dict[str, Any],
            dist: DistInfo) -> dict[str, Any]:
    """The top run.json lists every repeat's models and says complete (rank 0)."""
    barrier(dist)
    count = int(cfg["model"]["repeats"])
    ensembles = result["ensembles"]
    if dist.is_main:
        ensembles = finish_top_run(out, cfg)
        folders = [repeat_folder(out, k).relative_to(out).as_posix() for k in range(2, count + 1)]
        RunFolder(out, True).log(f"{count} independent repeats (this folder and "
                                 f"{', '.join(folders)}): run.json lists every repeat's "
                                 "served models, ensembled at scoring")
    return {**result, "ensembles": ensembles, "repeats": count}
