"""The layout of a train run folder (docs/training.md), shared by the engine and the app.

A run folder holds ``config.toml`` (the resolved configuration, written first),
``run.json`` (status, ensembles; written last), ``metrics.jsonl`` (one record per
epoch), ``train.log``, ``checkpoints/`` (``last*`` for resume, per-stage states) and
``models/`` (the finished checkpoints ``run.json`` lists).
"""

from __future__ import annotations

from pathlib import Path

CONFIG_TOML = "config.toml"
RUN_JSON = "run.json"
METRICS_JSONL = "metrics.jsonl"
TRAIN_LOG = "train.log"
CHECKPOINTS_DIR = "checkpoints"
MODELS_DIR = "models"
#: Stem of the resumable training state in ``checkpoints/`` (``last.state.json`` ...).
LAST_STATE = "last"
#: ``run.json`` ``format`` and the ``status`` of a run that finished.
RUN_FORMAT = "deepnoise-run"
RUN_COMPLETE = "complete"


def is_resumable(out: Path) -> bool:
    """True when ``out`` holds a run that ``resume`` can continue."""
    checkpoints = out / CHECKPOINTS_DIR
    return (
        (out / CONFIG_TOML).is_file()
        and checkpoints.is_dir()
        and any(checkpoints.glob(f"{LAST_STATE}*"))
    )


def is_finished(out: Path) -> bool:
    """True when ``out`` holds a finished run: run.json written and a model saved."""
    models = out / MODELS_DIR
    return (out / RUN_JSON).is_file() and models.is_dir() and any(models.glob("*.json"))


def new_run_problem(out: Path) -> str | None:
    """Why ``out`` cannot take a new run, or None when it can (missing or empty folder)."""
    if out.exists() and not out.is_dir():
        return f"Output {out} is a file, not a folder."
    if out.is_dir() and any(out.iterdir()):
        if is_resumable(out):
            return (
                f"Run folder {out} already holds a resumable run: resume it from the "
                "training view, or choose a new folder."
            )
        return f"Run folder {out} exists and is not a resumable run: choose a new or empty folder."
    return None
