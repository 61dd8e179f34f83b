"""Training step (torch): configuration, data, mean teacher, the loop, DDP, ``train`` CLI.

``run_training`` is imported lazily so ``import deepnoise_engine.train`` stays torch-free.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_training"]


def run_training(*args: Any, **kwargs: Any) -> dict:
    """See :func:`deepnoise_engine.train.loop.run_training`."""
    from deepnoise_engine.train.loop import run_training as _run

    return _run(*args, **kwargs)
