"""Per-plate balancing (each siRNA at most once per plate) and the plate prior. Torch-free."""

from deepnoise_engine.balance.assignment import argmax_calls, as_log_probs, assign_once_per_plate
from deepnoise_engine.balance.methods import METHODS, balance_plate, balanced_calls, check_method
from deepnoise_engine.balance.paper import balance_paper

__all__ = [
    "METHODS",
    "argmax_calls",
    "as_log_probs",
    "assign_once_per_plate",
    "balance_paper",
    "balance_plate",
    "balanced_calls",
    "check_method",
]
