"""Balancing: exact assignment vs brute force, the paper's iterative method, argmax."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepnoise_engine.balance import (
    argmax_calls,
    as_log_probs,
    assign_once_per_plate,
    balance_paper,
    balance_plate,
)


def _brute_force(lp: np.ndarray, allowed: np.ndarray) -> float:
    """Best total log-probability with each allowed class at most once (W <= A)."""
    w = lp.shape[0]
    return max(
        sum(lp[i, c] for i, c in enumerate(perm))
        for perm in itertools.permutations(allowed, w)
    )


@pytest.mark.parametrize("seed", range(12))
def test_assignment_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = int(rng.integers(1, 6))
    k = int(rng.integers(w, 7))
    lp = as_log_probs(rng.normal(size=(w, k)) * 3)
    allowed = np.sort(rng.choice(k, size=int(rng.integers(w, k + 1)), replace=False))
    calls, fallback = assign_once_per_plate(lp, allowed)
    assert not fallback.any()
    assert len(set(calls.tolist())) == w  # no class twice
    assert set(calls.tolist()) <= set(allowed.tolist())
    total = lp[np.arange(w), calls].sum()
    assert total == pytest.approx(_brute_force(lp, allowed), abs=1e-9)


def test_no_sirna_twice_and_beats_argmax_on_noisy_plate() -> None:
    rng = np.random.default_rng(1)
    k, w = 60, 56  # fewer wells than classes (missing wells)
    truth = rng.permutation(k)[:w]
    logits = rng.normal(size=(w, k))
    logits[np.arange(w), truth] += 3.0  # weak signal: argmax often wrong / colliding
    raw = argmax_calls(as_log_probs(logits))
    assert len(set(raw.tolist())) < w  # the raw calls do collide
    calls = balance_plate(logits, method="assignment")
    assert len(set(calls.tolist())) == w
    assert (calls == truth).mean() > (raw == truth).mean()


def test_more_wells_than_allowed_classes_fall_back_and_are_marked() -> None:
    rng = np.random.default_rng(2)
    lp = as_log_probs(rng.normal(size=(7, 10)))
    allowed = np.array([1, 4, 8])
    calls, fallback = assign_once_per_plate(lp, allowed)
    assert fallback.sum() == 4
    assert len(set(calls[~fallback].tolist())) == 3
    assert set(calls.tolist()) <= {1, 4, 8}
    # fallback wells take their argmax over the allowed classes
    rest = np.flatnonzero(fallback)
    np.testing.assert_array_equal(calls[rest], allowed[np.argmax(lp[np.ix_(rest, allowed)], 1)])


def test_allowed_mask_and_masked_minus_inf() -> None:
    with np.errstate(divide="ignore"):
        lp = np.log(np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0]]))  # -inf entries are fine
    calls = balance_plate(lp, allowed=np.array([True, True, False]))
    assert sorted(calls.tolist()) == [0, 1]
    assert calls.tolist() == [0, 1]  # 0.9*0.2 > 0.1*0.8
    assert balance_plate(lp, method="none").tolist() == [0, 0]


def test_empty_plate_and_bad_input() -> None:
    assert balance_plate(np.zeros((0, 5))).shape == (0,)
    with pytest.raises(ValueError, match="unknown balancing method"):
        balance_plate(np.zeros((2, 2)), method="magic")
    with pytest.raises(ValueError, match="NaN"):
        balance_plate(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="allowed is empty"):
        balance_plate(np.zeros((2, 3)), allowed=[])
    with pytest.raises(ValueError, match=r"0\.\.2"):
        balance_plate(np.zeros((2, 3)), allowed=[0, 5])


def test_paper_method_fixes_a_collision_argmax_makes() -> None:
    # Well 1 prefers class 0 (0.5 vs 0.45), but class 0 is well 0's much stronger call.
    probs = np.array([
        [0.70, 0.20, 0.10],
        [0.50, 0.45, 0.05],
        [0.10, 0.10, 0.80],
    ])
    raw = balance_plate(np.log(probs), method="none")
    assert raw.tolist() == [0, 0, 2]
    assert balance_paper(np.log(probs)).tolist() == [0, 1, 2]
    assert balance_plate(np.log(probs), method="paper").tolist() == [0, 1, 2]


def test_paper_method_coefficients_needed_when_column_softmax_is_not_enough() -> None:
    # After the column softmax wells 0 and 1 both still pick class 2 (0.47 and 0.353 vs
    # 0.333 for class 0): lowering class 2's coefficient must move well 1 to class 0.
    probs = np.array([
        [0.1, 0.1, 0.8],
        [0.2, 0.2, 0.6],
        [0.3, 0.4, 0.3],
    ])
    col = probs / probs.sum(axis=0)
    assert np.argmax(col, axis=1).tolist() == [2, 2, 1]
    assert balance_paper(np.log(probs)).tolist() == [2, 0, 1]
    assert balance_plate(np.log(probs)).tolist() == [2, 0, 1]  # the exact optimum agrees


def test_paper_method_improves_accuracy_on_noisy_plates() -> None:
    rng = np.random.default_rng(3)
    k = 40
    raw_acc, paper_acc = [], []
    for _ in range(5):
        truth = rng.permutation(k)
        logits = rng.normal(size=(k, k))
        logits[np.arange(k), truth] += 2.5
        raw_acc.append((argmax_calls(logits) == truth).mean())
        calls = balance_paper(logits)
        assert len(set(calls.tolist())) == k  # balanced: each class once
        paper_acc.append((calls == truth).mean())
    assert np.mean(paper_acc) > np.mean(raw_acc) + 0.02
