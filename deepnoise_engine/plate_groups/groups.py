"""Plate groups: the disjoint class sets that each plate holds exactly one of.

RxRx1's 1,108 siRNAs form 4 fixed groups of 277; every plate holds one group and the
four plates of an experiment hold the four groups in some order. ``learn_groups`` reads
the groups from labelled plates, ``infer_plate_groups`` finds an unlabelled experiment's
plate-to-group mapping from predictions (best of the permutations). Data without such
structure yields no groups, and callers then balance over all classes.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from deepnoise_engine.screen.model import sort_labels


def learn_groups(labels_by_plate: Mapping[Hashable, Iterable[str]]) -> list[frozenset[str]]:
    """Groups of classes that co-occur on labelled plates (connected components).

    ``labels_by_plate``: plate key -> the treatment labels on that plate (controls left
    out by the caller). Returns the groups sorted by their smallest label, or ``[]`` when
    the data shows no split (every class ends in one component).
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for labels in labels_by_plate.values():
        labels = [str(label) for label in labels]
        for label in labels:
            parent.setdefault(label, label)
        if labels:
            root = find(labels[0])
            for label in labels[1:]:
                other = find(label)
                if other != root:
                    parent[other] = root
    components: dict[str, set[str]] = {}
    for label in parent:
        components.setdefault(find(label), set()).add(label)
    if len(components) < 2:
        return []
    groups = {sort_labels(list(c))[0]: frozenset(c) for c in components.values()}
    return [groups[first] for first in sort_labels(list(groups))]


def plate_group_of(labels: Iterable[str], groups: Sequence[Collection[str]]) -> int | None:
    """Index of the group holding most of a labelled plate's labels (None if none)."""
    labels = [str(x) for x in labels]
    if not labels or not groups:
        return None
    hits = [sum(label in g for label in labels) for g in groups]
    best = int(np.argmax(hits))
    return best if hits[best] > 0 else None


def group_scores(
    probs_by_plate: Mapping[Hashable, np.ndarray],
    groups: Sequence[Collection[int]] | Sequence[Collection[str]],
    classes: Sequence[str] | None = None,
) -> tuple[list[Hashable], np.ndarray]:
    """Mean probability mass each plate's wells put on each group: ``(P, G)``.

    ``probs_by_plate``: plate -> ``(W, K)`` probabilities (rows sum to 1). Groups hold
    class indices, or labels when ``classes`` (the K column labels) is given.
    """
    columns = _group_columns(groups, classes)
    plates = list(probs_by_plate)
    scores = np.zeros((len(plates), len(columns)))
    for i, plate in enumerate(plates):
        probs = np.asarray(probs_by_plate[plate], dtype=np.float64)
        if probs.ndim != 2:
            raise ValueError(f"plate {plate!r}: expected (wells, classes), got {probs.shape}")
        if probs.shape[0] == 0:
            continue
        for j, cols in enumerate(columns):
            scores[i, j] = probs[:, cols].sum(axis=1).mean() if cols.size else 0.0
    return plates, scores


def _group_columns(
    groups: Sequence[Collection[int]] | Sequence[Collection[str]],
    classes: Sequence[str] | None,
) -> list[np.ndarray]:
    if classes is None:
        return [np.array(sorted(int(c) for c in g), dtype=np.int64) for g in groups]
    position = {str(label): i for i, label in enumerate(classes)}
    return [
        np.array(sorted(position[str(c)] for c in g if str(c) in position), dtype=np.int64)
        for g in groups
    ]


def infer_plate_groups(
    probs_by_plate: Mapping[Hashable, np.ndarray],
    groups: Sequence[Collection[int]] | Sequence[Collection[str]],
    classes: Sequence[str] | None = None,
) -> dict[Hashable, int]:
    """Plate -> group index for the plates of ONE experiment, from predictions.

    Maximises the total probability mass on the chosen groups with each group used once
    (the best of the G!/(G-P)! permutations, solved exactly as an assignment; 4! = 24 on
    RxRx1). With more plates than groups each group is used at most ceil(P/G) times.
    Returns ``{}`` when there are no groups.
    """
    if not groups or not probs_by_plate:
        return {}
    plates, scores = group_scores(probs_by_plate, groups, classes)
    n_plates, n_groups = scores.shape
    repeats = -(-n_plates // n_groups)
    tiled = np.tile(scores, (1, repeats))  # column j -> group j % G
    rows, cols = linear_sum_assignment(-tiled)
    return {plates[r]: int(c % n_groups) for r, c in zip(rows, cols, strict=True)}


def resolve_plate_groups(
    groups: Sequence[Collection[str]],
    plates_by_experiment: Mapping[str, Sequence[Hashable]],
    labelled: Mapping[Hashable, Iterable[str]],
    probs: Mapping[Hashable, np.ndarray],
    classes: Sequence[str],
) -> tuple[dict[Hashable, int], dict[Hashable, str]]:
    """Each plate's group: from its labels where it has some, else inferred per experiment
    from ``probs`` (plate -> (W, K) treatment-well probabilities over ``classes``),
    preferring the groups that the experiment's labelled plates do not hold.

    ``plates_by_experiment``: experiment -> all its plate keys (labelled ones included).
    Returns ``(plate -> group index, plate -> "labels" | "inferred")``.
    """
    by_plate: dict[Hashable, int] = {}
    source: dict[Hashable, str] = {}
    if not groups:
        return by_plate, source
    for keys in plates_by_experiment.values():
        taken: set[int] = set()
        for key in keys:
            group = plate_group_of(labelled.get(key, ()), groups)
            if group is not None:
                taken.add(group)
                by_plate[key], source[key] = group, "labels"
        todo = [k for k in keys if k not in by_plate and k in probs and len(probs[k])]
        if not todo:
            continue
        free = [g for g in range(len(groups)) if g not in taken]
        candidates = free if len(free) >= len(todo) else list(range(len(groups)))
        inferred = infer_plate_groups({k: probs[k] for k in todo},
                                      [groups[g] for g in candidates], classes=classes)
        for key, j in inferred.items():
            by_plate[key], source[key] = candidates[j], "inferred"
    return by_plate, source
