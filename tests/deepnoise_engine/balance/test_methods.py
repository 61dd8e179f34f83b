"""The balancing method is chosen in one place; only the assignment marks fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from deepnoise_engine.balance import METHODS, balance_plate, balanced_calls, check_method


def test_every_method_calls_within_allowed_and_only_assignment_falls_back() -> None:
    rng = np.random.default_rng(3)
    lp = rng.normal(size=(5, 6))  # 5 wells, 3 allowed classes: 2 wells left over
    allowed = np.array([0, 2, 4])
    for method in METHODS:
        calls, fallback = balanced_calls(lp, allowed, method)
        assert set(calls) <= set(allowed.tolist())
        assert fallback.sum() == (2 if method == "assignment" else 0)
        assert (balance_plate(lp, allowed, method) == calls).all()


def test_unknown_method_names_the_choices() -> None:
    with pytest.raises(ValueError, match="assignment, paper, none"):
        check_method("magic")
