"""The validation number that picks the served weights."""

from __future__ import annotations

import pytest

from deepnoise_engine.train.evaluation import selection_score


def test_selection_score_is_the_mean_of_raw_and_balanced() -> None:
    assert selection_score(0.5, 1.0) == pytest.approx(0.75)
