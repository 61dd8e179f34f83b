"""What training measures: the number that picks the served weights (torch-free)."""

from __future__ import annotations


def selection_score(raw: float, balanced: float) -> float:
    """The number that picks the served weights and refreshes pseudo labels: the mean of
    raw and balanced treatment accuracy (balanced alone saturates at 100% early)."""
    return 0.5 * (raw + balanced)
