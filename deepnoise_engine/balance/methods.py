"""The one place that chooses a balancing method (torch-free)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepnoise_engine.balance.assignment import argmax_calls, as_log_probs, assign_once_per_plate
from deepnoise_engine.balance.paper import balance_paper
from deepnoise_engine.contract.choices import BALANCE_METHODS

#: Balancing methods accepted by ``balance_plate`` and ``deepnoise-engine score --balance``.
METHODS = BALANCE_METHODS


def check_method(method: str) -> None:
    """Raise ``ValueError`` naming the choices when ``method`` is not a balancing method."""
    if method not in METHODS:
        raise ValueError(f"unknown balancing method {method!r}: expected one of "
                         f"{', '.join(METHODS)}")


def balanced_calls(
    log_probs: np.ndarray,
    allowed: Sequence[int] | np.ndarray | None = None,
    method: str = "assignment",
) -> tuple[np.ndarray, np.ndarray]:
    """Calls for one plate's treatment wells and which of them fell back to their argmax.

    ``method``: ``assignment`` (exact, default; marks the wells left over when the plate
    has more wells than allowed classes), ``paper`` (the authors' iterative coefficients)
    or ``none`` (argmax over ``allowed``). Returns ``(calls (W,), fallback (W,) bool)``.
    """
    check_method(method)
    if method == "assignment":
        return assign_once_per_plate(log_probs, allowed)
    if method == "paper":
        calls = balance_paper(log_probs, allowed)
    else:
        calls = argmax_calls(as_log_probs(log_probs), allowed)
    return calls, np.zeros(len(calls), dtype=bool)


def balance_plate(
    log_probs: np.ndarray,
    allowed: Sequence[int] | np.ndarray | None = None,
    method: str = "assignment",
) -> np.ndarray:
    """Balanced calls for one plate's treatment wells: ``(W, K) -> (W,)`` class indices."""
    return balanced_calls(log_probs, allowed, method)[0]
