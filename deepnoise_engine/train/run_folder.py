"""The run folder: created or checked before training, then the files the trainer
writes into it (train.log, metrics.jsonl, run.json, checkpoints/, models/)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from deepnoise_engine.atomic_io import atomic_write_text
from deepnoise_engine.contract.run_folder import (
    CHECKPOINTS_DIR,
    CONFIG_TOML,
    LAST_STATE,
    METRICS_JSONL,
    MODELS_DIR,
    RUN_JSON,
    TRAIN_LOG,
)
from deepnoise_engine.train import config as cfgmod


class RunFolderError(RuntimeError):
    """The run folder exists and cannot be (re)used as asked."""


#: Config keys that may differ between a run and its resume (they do not change results).
_RESUME_FREE = {("runtime", "device"), ("runtime", "progress_every_s"), ("data", "workers"),
                ("data", "pin_memory"), ("runtime", "threads")}


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = []
    for sec in sorted(set(a) | set(b)):
        for k in sorted(set(a.get(sec, {})) | set(b.get(sec, {}))):
            if (sec, k) in _RESUME_FREE:
                continue
            if a.get(sec, {}).get(k) != b.get(sec, {}).get(k):
                keys.append(f"{sec}.{k}")
    return keys


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse a folder a run cannot use (read-only; raises ``RunFolderError``): a file, a
    non-empty folder without ``resume``, a folder that holds no run."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out}: exists and is not a folder; choose another --out")
    existing = out.is_dir() and any(out.iterdir())
    if existing and not resume:
        raise RunFolderError(f"{out}: folder exists and is not empty; pass --resume to "
                             "continue the run in it, or choose a new --out folder")
    if existing and not (out / CONFIG_TOML).is_file():
        raise RunFolderError(f"{out}: not a training run folder (no {CONFIG_TOML}); "
                             "refusing to write into it")


def prepare_run_folder(out: Path, cfg: dict[str, Any], resume: bool) -> bool:
    """Create or check the run folder; returns True when a checkpoint should be resumed.

    A folder that exists and is not empty is refused unless ``resume``; with ``resume``
    its config.toml must match (except runtime-only keys).
    """
    check_run_folder(out, resume)
    if out.is_dir() and any(out.iterdir()):
        cfg_file = out / CONFIG_TOML
        try:
            old = cfgmod.validate(cfgmod.load_toml(cfg_file))
        except cfgmod.ConfigError as exc:
            raise RunFolderError(f"{cfg_file}: cannot resume: {exc}") from None
        diff = _config_diff(old, cfg)
        if diff:
            raise RunFolderError(f"{out}: cannot resume: the configuration differs in "
                                 f"{', '.join(diff)}; use a new --out folder")
        return (out / CHECKPOINTS_DIR / f"{LAST_STATE}.state.json").is_file()
    for sub in (CHECKPOINTS_DIR, MODELS_DIR):
        (out / sub).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_TOML, cfgmod.dumps(cfg))
    return False


class RunFolder:
    """Writes a run's files; on ranks other than the main one every write is skipped."""

    def __init__(self, path: Path, is_main: bool) -> None:
        self.path = path
        self.is_main = is_main

    def log(self, message: str) -> None:
        """Append a time-stamped line to train.log."""
        if self.is_main:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            with open(self.path / TRAIN_LOG, "a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {message}\n")

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        if self.is_main:
            atomic_write_text(self.path / METRICS_JSONL,
                              "".join(json.dumps(m) + "\n" for m in history))

    def write_run(self, doc: dict[str, Any]) -> None:
        if self.is_main:
            atomic_write_text(self.path / RUN_JSON, json.dumps(doc, indent=1) + "\n")

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        """``checkpoints/{name}``: the resumable training state (or the shared stage's)."""
        if self.is_main:
            from deepnoise_engine.model.checkpoint import save_training_state

            save_training_state(self.path / CHECKPOINTS_DIR / name, state)

    def load_state(self, name: str, map_location: str = "cpu") -> dict[str, Any]:
        from deepnoise_engine.model.checkpoint import load_training_state

        return load_training_state(self.path / CHECKPOINTS_DIR / name, map_location=map_location)

    def save_model(self, stem: str, model: Any, meta: dict[str, Any]) -> None:
        """A checkpoint at ``stem`` (relative to the run folder, e.g. ``models/shared_x``)."""
        if self.is_main:
            from deepnoise_engine.model.checkpoint import save_checkpoint

            save_checkpoint(self.path / stem, model, meta)

    def load_model_state(self, stem: str) -> dict[str, Any]:
        from deepnoise_engine.model.checkpoint import load_checkpoint

        return load_checkpoint(self.path / stem)[0].state_dict()
