"""Train a screen: configuration, run folder, the screen's data, the plate prior
(balance) and the trainer (torch). ``run_training`` is what ``deepnoise-engine train``
and the engine's ``train``/``resume`` requests run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepnoise_engine.balance.plate_prior import PlatePrior
from deepnoise_engine.contract import Reporter
from deepnoise_engine.train import config as cfgmod
from deepnoise_engine.train.data import build_screen_data, open_data
from deepnoise_engine.train.ddp import DistInfo, barrier, broadcast_object, init_from_env, shutdown
from deepnoise_engine.train.loop import Trainer
from deepnoise_engine.train.models import training_device
from deepnoise_engine.train.precheck import check_training_inputs
from deepnoise_engine.train.run_folder import RunFolderError, prepare_run_folder

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
        trainer = Trainer(cfg, sd, out, dist, device, reporter or Reporter(), prior)
        return trainer.run(do_resume)
    finally:
        torch.set_num_threads(threads_before)
        shutdown(dist)


def _open_inputs(data: str | Path, out: Path, cfg: dict[str, Any], resume: bool,
                 dist: DistInfo) -> tuple[Any, Any, bool]:
    """Check the inputs, prepare the run folder (rank 0), open the screen and its pack
    cache; returns ``(screen, cache, resume from a checkpoint)``."""
    # inputs first (screen, labels, pack): a bad screen or a full disk creates no stub
    opened = check_training_inputs(data, out, resume) if dist.is_main else None
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
    # rank 0 packs the screen first; the others then open the complete cache
    if opened is not None:
        screen, cache = opened
    barrier(dist)
    if not dist.is_main:
        screen, cache = open_data(data)
    return screen, cache, do_resume
