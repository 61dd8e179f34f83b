"""Per-plate balancing: every siRNA at most once per plate (the prior behind DeepNoise's
95.5% -> 99.6% step).

Inputs are per-well scores ``(W, K)`` for the plate's treatment wells (controls are left
out by the caller). ``allowed`` restricts the calls to a subset of the K classes (the
plate's group of 277 on RxRx1). Torch-free: numpy + scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import log_softmax

#: Floor for log-probabilities in the cost matrix: scipy refuses infinite costs, and a
#: masked class (-inf) must stay possible only when nothing else is left.
_LOG_FLOOR = -1e6


def as_log_probs(scores: np.ndarray) -> np.ndarray:
    """Logits or log-probabilities ``(W, K)`` -> log-probabilities ``(W, K)`` float64.

    log_softmax is idempotent on log-probabilities, so either input works.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"expected a (wells, classes) array, got shape {scores.shape}")
    if scores.size and not np.all(np.isfinite(scores) | (scores == -np.inf)):
        raise ValueError("scores contain NaN or +inf")
    if scores.shape[0] == 0:
        return scores
    return log_softmax(scores, axis=1)


def _allowed_indices(allowed: Sequence[int] | np.ndarray | None, k: int) -> np.ndarray:
    """``allowed`` (class indices or a boolean mask of length K, or None = all) -> sorted
    unique int indices (A,)."""
    if allowed is None:
        return np.arange(k)
    arr = np.asarray(allowed)
    if arr.dtype == bool:
        if arr.shape != (k,):
            raise ValueError(f"allowed mask has shape {arr.shape}, expected ({k},)")
        idx = np.flatnonzero(arr)
    else:
        idx = np.unique(arr.astype(np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= k):
            raise ValueError(f"allowed class indices must lie in 0..{k - 1}")
    if idx.size == 0:
        raise ValueError("allowed is empty: no class left to call")
    return idx


def argmax_calls(log_probs: np.ndarray, allowed: Sequence[int] | np.ndarray | None = None
                 ) -> np.ndarray:
    """Unbalanced calls: argmax over the allowed classes, ``(W, K) -> (W,)`` class indices."""
    lp = np.asarray(log_probs)
    idx = _allowed_indices(allowed, lp.shape[1])
    if lp.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return idx[np.argmax(lp[:, idx], axis=1)].astype(np.int64)


def assign_once_per_plate(
    log_probs: np.ndarray, allowed: Sequence[int] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact balancing by linear sum assignment (Hungarian; the 1st-place method).

    Maximises the plate's total log-probability with each allowed class used at most once.
    ``log_probs``: ``(W, K)`` log-probabilities (or logits: normalised here).
    Returns ``(calls (W,) int64 class indices, fallback (W,) bool)``. When the plate has
    more wells than allowed classes, the wells left over by the assignment (the least
    confident) fall back to their argmax over the allowed classes and are marked in
    ``fallback``; all other calls are distinct.
    """
    lp = as_log_probs(log_probs)
    w, k = lp.shape
    idx = _allowed_indices(allowed, k)
    calls = np.zeros(w, dtype=np.int64)
    fallback = np.zeros(w, dtype=bool)
    if w == 0:
        return calls, fallback
    cost = -np.maximum(lp[:, idx], _LOG_FLOOR)  # (W, A)
    rows, cols = linear_sum_assignment(cost)
    calls[rows] = idx[cols]
    if rows.size < w:  # more wells than classes: the rest take their argmax
        rest = np.setdiff1d(np.arange(w), rows, assume_unique=True)
        calls[rest] = idx[np.argmax(lp[np.ix_(rest, idx)], axis=1)]
        fallback[rest] = True
    return calls, fallback
