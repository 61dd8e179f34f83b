"""The default validation split of a screen (one home: training and the engine's
``default_split`` answer both use it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def default_validation_experiments(
    cell_type_of: Mapping[str, str], labelled: Iterable[str], per_cell_type: int
) -> list[str]:
    """The last ``per_cell_type`` labelled experiments (sorted by name) of each cell type
    validate, keeping at least one labelled experiment of the cell type for training."""
    labelled = sorted(set(labelled))
    chosen: list[str] = []
    for cell_type in sorted(set(cell_type_of.values())):
        names = [e for e in labelled if cell_type_of.get(e) == cell_type]
        if len(names) >= 2 and per_cell_type > 0:  # keep at least one for training
            chosen += names[-min(per_cell_type, len(names) - 1):]
    return chosen
