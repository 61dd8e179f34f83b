"""Plate groups: learned from labelled plates, inferred for unlabelled experiments."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from deepnoise_engine.plate_groups import infer_plate_groups, learn_groups, plate_group_of

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"


def _synthetic_groups(n_groups: int = 4, size: int = 10) -> list[list[str]]:
    labels = [str(i) for i in range(n_groups * size)]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    return [sorted((labels[j] for j in order[g::n_groups]), key=int) for g in range(n_groups)]


def test_learn_groups_from_co_occurrence() -> None:
    groups = _synthetic_groups()
    rng = np.random.default_rng(1)
    plates = {}
    for exp in range(3):
        for plate, g in enumerate(rng.permutation(4)):
            members = list(groups[g])
            rng.shuffle(members)
            plates[(exp, plate)] = members[:-1] if plate == 0 else members  # a missing well
    learned = learn_groups(plates)
    assert sorted(map(frozenset, groups), key=lambda g: min(map(int, g))) == learned
    # each labelled plate maps back to the group it holds
    for labels in plates.values():
        assert set(labels) <= learned[plate_group_of(labels, learned)]


def test_no_groups_when_every_plate_holds_every_class() -> None:
    plates = {p: ["1", "2", "3", "4"] for p in range(4)}
    assert learn_groups(plates) == []
    assert infer_plate_groups({0: np.full((4, 4), 0.25)}, []) == {}


def _plate_probs(groups_idx: list[np.ndarray], mapping: dict[int, int], k: int,
                 rng: np.random.Generator, signal: float) -> dict[int, np.ndarray]:
    out = {}
    for plate, g in mapping.items():
        truth = rng.permutation(groups_idx[g])
        logits = rng.normal(size=(truth.size, k))
        logits[np.arange(truth.size), truth] += signal
        out[plate] = softmax(logits, axis=1)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_infer_plate_groups_recovers_the_true_mapping(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = _synthetic_groups(4, 25)
    classes = [str(i) for i in range(100)]
    groups_idx = [np.array([int(c) for c in g]) for g in groups]
    mapping = dict(enumerate(int(g) for g in rng.permutation(4)))
    # weak signal: per-well argmax is mostly wrong, the plate-level mass still tells
    probs = _plate_probs(groups_idx, mapping, 100, rng, signal=1.5)
    assert infer_plate_groups(probs, groups, classes=classes) == mapping
    # groups as class indices work too
    assert infer_plate_groups(probs, groups_idx) == mapping


def test_infer_is_the_best_permutation_and_handles_other_counts() -> None:
    rng = np.random.default_rng(5)
    groups_idx = [np.arange(g * 5, g * 5 + 5) for g in range(3)]
    probs = {p: softmax(rng.normal(size=(5, 15)) * 2, axis=1) for p in range(3)}
    inferred = infer_plate_groups(probs, groups_idx)
    def total(perm: tuple[int, ...]) -> float:
        return sum(probs[p][:, groups_idx[g]].sum(1).mean() for p, g in enumerate(perm))
    best = max(itertools.permutations(range(3)), key=total)
    assert tuple(inferred[p] for p in range(3)) == best
    # two plates, three groups: distinct groups; five plates, three groups: each group <= 2x
    two = infer_plate_groups({p: probs[p] for p in range(2)}, groups_idx)
    assert len(set(two.values())) == 2
    five = infer_plate_groups({p: probs[p % 3] for p in range(5)}, groups_idx)
    assert max(list(five.values()).count(g) for g in range(3)) <= 2


def test_real_rxrx1_train_has_four_groups_of_277() -> None:
    if not (SAMPLE / "train.csv").is_file():
        pytest.skip(f"RxRx1 sample not found at {SAMPLE}")
    train = pd.read_csv(SAMPLE / "train.csv", dtype={"sirna": str})
    by_plate = {key: list(df["sirna"]) for key, df in train.groupby(["experiment", "plate"])}
    groups = learn_groups(by_plate)
    assert [len(g) for g in groups] == [277] * 4
    assert len(frozenset().union(*groups)) == 1108
    for labels in by_plate.values():  # every training plate holds exactly one group
        assert sum(bool(set(labels) & g) for g in groups) == 1
    # the four plates of an experiment hold the four different groups
    for exp, df in train.groupby("experiment"):
        held = {plate_group_of(d["sirna"], groups) for _, d in df.groupby("plate")}
        assert held == {0, 1, 2, 3}, exp
