"""Model sets: the ensemble of a cell type (or the shared one) and the stored groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnoise_engine.model_sets import ModelSet, resolve_model_set


def test_a_cell_type_without_its_own_ensemble_gets_the_shared_one() -> None:
    shared, u2os = [Path("run/models/shared_x")], [Path("run/models/U2OS_x")]
    models = ModelSet({"*": shared, "U2OS": u2os},
                      {shared[0]: {}, u2os[0]: {"plate_groups": [["b", "a"], [1]]}}, ["a"])
    assert models.for_cell_type("U2OS") == u2os
    assert models.for_cell_type("HEPG2") == shared
    assert models.plate_groups == [["b", "a"], ["1"]]
    assert ModelSet({"U2OS": u2os}, {u2os[0]: {}}, ["a"]).for_cell_type("HEPG2") is None


def test_no_model_is_refused() -> None:
    with pytest.raises(ValueError, match="no model given"):
        resolve_model_set([])
