"""The plate groups of a screen's chosen plates: the model's groups (learnt at training
time) or the screen's, and each plate's group from its labels or its predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepnoise_engine.plate_groups.groups import learn_groups, resolve_plate_groups
from deepnoise_engine.screen.model import Screen, WellType, sort_labels

PlateKey = tuple[str, int]


@dataclass
class PlateGroups:
    """The groups (label sets), each chosen plate's group index and where it came from."""

    groups: list[frozenset[str]]
    by_plate: dict[PlateKey, int] = field(default_factory=dict)
    source: dict[PlateKey, str] = field(default_factory=dict)  # "labels" | "inferred"

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [sort_labels(list(g)) for g in self.groups],
            "by_plate": {f"{e}/{p}": g for (e, p), g in sorted(self.by_plate.items())},
            "inferred": sorted(f"{e}/{p}" for (e, p), s in self.source.items()
                               if s == "inferred"),
        }


def treatment_labels(screen: Screen) -> dict[PlateKey, list[str]]:
    """The labels of each plate's labelled treatment wells."""
    out: dict[PlateKey, list[str]] = {}
    for exp, plate, well in screen.wells():
        if well.well_type == WellType.TREATMENT and well.sirna is not None:
            out.setdefault((exp.name, plate.index), []).append(well.sirna)
    return out


def screen_plates(screen: Screen, experiment: str) -> list[PlateKey]:
    """Every plate key of ``experiment``, in plate order."""
    return [(experiment, i) for i in sorted(screen.experiments[experiment].plates)]


def plate_groups_for(
    screen: Screen,
    plates: Sequence[PlateKey],
    probs: dict[PlateKey, np.ndarray],
    classes: Sequence[str],
    model_groups: Sequence[Sequence[str]] = (),
) -> PlateGroups:
    """The plate groups (the model's, learnt at training time; else learnt from the
    screen's labelled plates) and each chosen plate's group: from its labels, else
    inferred per experiment from ``probs`` (plate -> (W, K) treatment-well
    probabilities), preferring the groups not held by the experiment's labelled plates."""
    labelled = treatment_labels(screen)
    groups = ([frozenset(str(c) for c in g) for g in model_groups] if model_groups
              else learn_groups(labelled))
    result = PlateGroups(groups)
    if not groups:
        return result
    chosen = set(plates)
    experiments = sorted({key[0] for key in chosen})
    by_plate, source = resolve_plate_groups(
        groups, {exp: screen_plates(screen, exp) for exp in experiments}, labelled,
        {k: v for k, v in probs.items() if k in chosen}, classes)
    for key in plates:
        if key in by_plate:
            result.by_plate[key], result.source[key] = by_plate[key], source[key]
    return result
