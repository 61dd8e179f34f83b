"""Model sets: run folders and checkpoints resolved into one ensemble per cell type, and
the checks that they fit a screen (torch-free: reads the checkpoints' JSON only)."""

from deepnoise_engine.model_sets.resolve import (
    ModelSet,
    channel_notes,
    check_models_fit,
    resolve_model_set,
)

__all__ = ["ModelSet", "channel_notes", "check_models_fit", "resolve_model_set"]
