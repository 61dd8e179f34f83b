"""Per-plate balancing (each siRNA at most once per plate) and plate groups. Torch-free."""

from deepnoise_engine.balance.assignment import (
    METHODS,
    argmax_calls,
    as_log_probs,
    assign_once_per_plate,
    balance_plate,
)
from deepnoise_engine.balance.paper import balance_paper
from deepnoise_engine.balance.plate_groups import (
    group_scores,
    infer_plate_groups,
    learn_groups,
    plate_group_of,
    resolve_plate_groups,
)

__all__ = [
    "METHODS",
    "argmax_calls",
    "as_log_probs",
    "assign_once_per_plate",
    "balance_paper",
    "balance_plate",
    "group_scores",
    "infer_plate_groups",
    "learn_groups",
    "plate_group_of",
    "resolve_plate_groups",
]
