"""The DeepNoise authors' iterative balancing (method-notes, "Inference and post-processing").

Keep the plate's allowed classes, softmax DOWN each class column (over the plate's
wells), then repeatedly lower the coefficient of the most-predicted class by ``alpha``
(0.01; rounds of 3,000 steps keep the best coefficients, and a round that does not
improve the balance score halves alpha, until it falls below 1e-4) and take the argmax.
This follows the authors' code (adapted from P. Ostyakov's predictions_balancing).
Unlike the assignment it does not guarantee one call per class, but it is what the
paper's 99.6% used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import softmax

from deepnoise_engine.balance.assignment import _allowed_indices, as_log_probs


def _score(counts: np.ndarray, w: int, a: int) -> float:
    """The authors' balance score: sum over classes of min(share of wells, 1/A); higher is
    better, at most min(1, W/A) (every class called W/A times, or W distinct calls)."""
    return float(np.minimum(counts / w, 1.0 / a).sum())


class _State:
    """Column-softmaxed scores with the current coefficients, their argmax calls, the call
    counts and the balance score (kept up to date incrementally: this loop runs ~20,000
    steps per plate, so each step touches only the wells called by the lowered class)."""

    def __init__(self, col: np.ndarray, coefs: np.ndarray) -> None:
        self.col = col
        self.w, self.a = col.shape
        self.cap = self.w / self.a  # calls per class that still count for the score
        self.coefs = coefs.copy()
        self.scaled = col * self.coefs
        self.pred = np.argmax(self.scaled, axis=1)
        self.counts = np.bincount(self.pred, minlength=self.a)
        self.score = _score(self.counts, self.w, self.a)

    def _count(self, cls: int, delta: int) -> None:
        old = int(self.counts[cls])
        self.counts[cls] = old + delta
        self.score += (min(old + delta, self.cap) - min(old, self.cap)) / self.w

    def lower_top(self, alpha: float, budget: int) -> int:
        """Lower the most-called class's coefficient by ``alpha``; when no call changes,
        jump straight to the step where one does (identical calls, fewer numpy calls).
        Returns the steps taken (1..budget)."""
        top = int(np.argmax(self.counts))
        rows = np.flatnonzero(self.pred == top)
        self.coefs[top] -= alpha
        steps = 1
        column = self.scaled[:, top]
        np.multiply(self.col[:, top], self.coefs[top], out=column)
        new = np.argmax(self.scaled[rows], axis=1)
        moved = new != top
        if not moved.any() and budget > 1 and rows.size:
            others = self.scaled[rows].copy()
            others[:, top] = -np.inf
            # a row leaves `top` once coef * col[row, top] < its best other score
            threshold = float(np.max(others.max(axis=1) / self.col[rows, top]))
            extra = int(np.floor((self.coefs[top] - threshold) / alpha)) + 1
            extra = max(0, min(extra, budget - 1))
            if extra:
                self.coefs[top] -= extra * alpha
                steps += extra
                np.multiply(self.col[:, top], self.coefs[top], out=column)
                new = np.argmax(self.scaled[rows], axis=1)
                moved = new != top
        if moved.any():
            self.pred[rows] = new
            self._count(top, -int(moved.sum()))
            for cls in new[moved].tolist():
                self._count(cls, 1)
        return steps


def balance_paper(
    log_probs: np.ndarray,
    allowed: Sequence[int] | np.ndarray | None = None,
    *,
    alpha: float = 0.01,
    alpha_min: float = 1e-4,
    iterations: int = 3000,
    max_rounds: int = 100,
) -> np.ndarray:
    """The authors' balancing: ``(W, K)`` log-probabilities (or logits) -> ``(W,)`` calls.

    Rounds of ``iterations`` steps; each step lowers the coefficient of the most-called
    class by ``alpha`` and keeps the best-scoring coefficients; a round that does not
    improve the score halves ``alpha``; stops below ``alpha_min`` or once the score is
    the best possible. Calls are the argmax of the column-softmaxed scores times the
    coefficients; not guaranteed distinct (use the assignment for that).
    """
    lp = as_log_probs(log_probs)
    w, k = lp.shape
    idx = _allowed_indices(allowed, k)
    if w == 0:
        return np.zeros(0, dtype=np.int64)
    a = idx.size
    col = softmax(lp[:, idx], axis=0)  # (W, A): each class column sums to 1 over wells
    ceiling = min(1.0, w / a) - 1e-9
    coefs = np.ones(a)
    last = _State(col, coefs).score
    for _ in range(max_rounds):
        if alpha < alpha_min or last >= ceiling:
            break
        state = _State(col, coefs)
        best, best_coefs = last, coefs
        done = 0
        while done < iterations:
            done += state.lower_top(alpha, iterations - done)
            score = state.score
            if score > best + 1e-12:
                best, best_coefs = score, state.coefs.copy()
                if best >= ceiling:
                    break
        coefs = best_coefs
        if best <= last:
            alpha *= 0.5
        last = best
    return idx[_State(col, coefs).pred].astype(np.int64)
