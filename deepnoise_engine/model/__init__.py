"""Models (torch): registry, Xception backbones, ArcFace, checkpoints.

Importing this package is cheap and torch-free; the names below are loaded on first use
(``from deepnoise_engine.model import create_model`` imports torch then).
"""

from __future__ import annotations

import importlib
from typing import Any

from deepnoise_engine.model.errors import (
    CheckpointError,
    ModelError,
    ModelMismatchError,
    UnknownModelError,
)

_LAZY = {
    "create_model": "registry",
    "register_model": "registry",
    "list_models": "registry",
    "DeepNoiseNet": "registry",
    "count_parameters": "registry",
    "ArcFaceHead": "arcface",
    "arcface_logits": "arcface",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "read_metadata": "checkpoint",
    "check_fits": "checkpoint",
    "save_training_state": "checkpoint",
    "load_training_state": "checkpoint",
    "resolve_models": "checkpoint",
}

__all__ = [
    "CheckpointError",
    "ModelError",
    "ModelMismatchError",
    "UnknownModelError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"deepnoise_engine.model.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'deepnoise_engine.model' has no attribute {name!r}")
