"""The treatment-well metric, plate groups and group-masked pseudo labels (torch-free)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepnoise_engine.balance.plate_prior import PlatePrior

# 2 experiments x 2 plates; siRNAs 0-3 in groups {0,1} and {2,3}; controls 4 and 5
CLASSES = ["0", "1", "2", "3", "4", "5"]


def _wells() -> pd.DataFrame:
    rows = []
    for exp, groups in (("E1", ([0, 1], [2, 3])), ("E2", ([2, 3], [0, 1]))):
        for plate, group in enumerate(groups, start=1):
            for label in group:
                rows.append((exp, f"{exp}/{plate}", "treatment", label if exp == "E1" else -1))
            rows.append((exp, f"{exp}/{plate}", "negative_control", 5))
            rows.append((exp, f"{exp}/{plate}", "positive_control", 4))
    return pd.DataFrame(rows, columns=["experiment", "plate", "well_type", "label"])


def test_groups_are_learnt_from_labelled_treatment_plates() -> None:
    prior = PlatePrior.from_wells(_wells(), CLASSES)
    assert prior.groups == [["0", "1"], ["2", "3"]]
    assert prior.treatment.tolist() == [0, 1, 2, 3]  # controls are not treatment classes


def test_accuracy_counts_treatment_wells_over_treatment_classes() -> None:
    wells = _wells()
    prior = PlatePrior.from_wells(wells, CLASSES)
    idx = np.flatnonzero(wells["experiment"] == "E1")
    labels = wells["label"].to_numpy()[idx]
    lp = np.full((len(idx), 6), -5.0)
    lp[np.arange(len(idx)), labels] = -1.0  # every call right...
    treat = wells["well_type"].to_numpy()[idx] == "treatment"
    lp[treat, 5] = 0.0  # ...but treatment wells lean to the negative control
    raw, balanced = prior.accuracy(lp, idx, labels)
    # controls are ignored, and the raw call of a treatment well is a siRNA
    assert raw == 1.0 and balanced == 1.0


def test_balanced_calls_stay_in_the_inferred_group() -> None:
    wells = _wells()
    prior = PlatePrior.from_wells(wells, CLASSES)
    idx = np.flatnonzero((wells["experiment"] == "E2") & (wells["well_type"] == "treatment"))
    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.ones(6), len(idx)))
    # E2/1 holds group {2,3}: make that the likely one for its wells
    on_plate1 = wells["plate"].to_numpy()[idx] == "E2/1"
    lp[np.ix_(on_plate1, [2, 3])] += 3.0
    lp[np.ix_(~on_plate1, [0, 1])] += 3.0
    lp[:, 4:] += 10.0  # controls most likely of all: pseudo labels must still skip them
    calls = prior.balanced_calls(lp, idx, use_labels=True)
    assert set(calls[on_plate1]) == {2, 3} and set(calls[~on_plate1]) == {0, 1}

