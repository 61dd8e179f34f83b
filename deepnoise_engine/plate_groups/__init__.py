"""Plate groups: the disjoint class sets that each plate holds exactly one of (torch-free).

``groups``: learnt from labelled plates and inferred from predictions on unlabelled ones;
``screen``: the same for the plates of a ``Screen`` being scored.
"""

from deepnoise_engine.plate_groups.groups import (
    group_scores,
    infer_plate_groups,
    learn_groups,
    plate_group_of,
    resolve_plate_groups,
)
from deepnoise_engine.plate_groups.screen import (
    PlateGroups,
    PlateKey,
    plate_groups_for,
    screen_plates,
    treatment_labels,
)

__all__ = [
    "PlateGroups",
    "PlateKey",
    "group_scores",
    "infer_plate_groups",
    "learn_groups",
    "plate_group_of",
    "plate_groups_for",
    "resolve_plate_groups",
    "screen_plates",
    "treatment_labels",
]
