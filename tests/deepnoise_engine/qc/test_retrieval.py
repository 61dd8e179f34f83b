"""mAP and k-NN mixing on profiles with planted structure; APs equal copairs' own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepnoise_engine.qc.job import qc_meta
from deepnoise_engine.qc.retrieval import (
    TASKS,
    average_precisions,
    knn_mixing,
    mean_average_precisions,
    unit_rows,
)
from deepnoise_engine.qc.synthetic import planted_features, planted_metadata


@pytest.fixture(scope="module")
def layout() -> pd.DataFrame:
    return planted_metadata({"HEPG2": 3, "U2OS": 3}, plates=2, sirnas=40)


def _maps(layout: pd.DataFrame, **planted: float) -> dict:
    x = unit_rows(planted_features(layout, 32, **planted), standardise=False)
    return mean_average_precisions(x, qc_meta(layout), block=10_000)


def test_aps_equal_copairs_average_precision(layout: pd.DataFrame) -> None:
    from copairs.map import average_precision

    meta = qc_meta(layout)
    x = unit_rows(planted_features(layout, 16, sirna=0.5, experiment=0.5, plate=0.3),
                  standardise=False)
    ours = average_precisions(x, meta, list(TASKS.values()), block=10_000)  # one block
    for name, task in TASKS.items():
        theirs = average_precision(meta, x, list(task.pos_same), list(task.pos_diff),
                                   list(task.neg_same), list(task.neg_diff),
                                   progress_bar=False).dropna(subset=["average_precision"])
        mine = ours[name].set_index("row")
        assert len(mine) == len(theirs), name
        assert np.allclose(mine.loc[theirs.index, "average_precision"],
                           theirs["average_precision"], atol=1e-5), name
        assert (mine.loc[theirs.index, "n_total"] == theirs["n_total_pairs"]).all(), name


def test_sirna_signal_only(layout: pd.DataFrame) -> None:
    maps = _maps(layout, sirna=2.0, experiment=0.0)
    assert maps["sirna"]["map"] > 0.95
    assert abs(maps["experiment"]["normalised"]) < 0.1
    assert abs(maps["plate"]["normalised"]) < 0.1


def test_experiment_signal_only(layout: pd.DataFrame) -> None:
    maps = _maps(layout, sirna=0.0, experiment=2.0)
    assert maps["experiment"]["map"] > 0.95
    assert abs(maps["sirna"]["normalised"]) < 0.1
    assert maps["sirna"]["chance"] < 0.2


def test_noise_only_sits_at_chance(layout: pd.DataFrame) -> None:
    maps = _maps(layout, sirna=0.0, experiment=0.0)
    for metric in maps.values():
        assert abs(metric["map"] - metric["chance"]) < 0.05


def test_blocks_keep_the_order_of_profiles(layout: pd.DataFrame) -> None:
    """Fewer negatives per query (small blocks) change the mAP values but not which
    profile carries more siRNA and experiment signal."""
    meta = qc_meta(layout)
    weak = unit_rows(planted_features(layout, 32, sirna=0.3, experiment=0.2), standardise=False)
    strong = unit_rows(planted_features(layout, 32, sirna=0.8, experiment=0.6, seed=1),
                       standardise=False)
    for block in (60, 10_000):
        w = mean_average_precisions(weak, meta, block=block)
        s = mean_average_precisions(strong, meta, block=block)
        assert w["sirna"]["groups"] == 40
        assert s["sirna"]["map"] > w["sirna"]["map"] > w["sirna"]["chance"]
        assert s["experiment"]["map"] > w["experiment"]["map"] > w["experiment"]["chance"]


def test_knn_mixing(layout: pd.DataFrame) -> None:
    meta = qc_meta(layout)
    separated = unit_rows(planted_features(layout, 32, sirna=0.0, experiment=3.0),
                          standardise=False)
    mixed = unit_rows(planted_features(layout, 32, sirna=2.0, experiment=0.0),
                      standardise=False)
    assert knn_mixing(separated, meta, "experiment", "cell_type") < 0.1
    assert knn_mixing(mixed, meta, "experiment", "cell_type") == pytest.approx(1.0, abs=0.2)
