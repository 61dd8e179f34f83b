"""The plate prior of a training screen: treatment classes, plate groups and each well's
plate, for the treatment-well validation metric and group-masked pseudo labels
(torch-free).

The challenge metric counts treatment wells over treatment classes: control wells (easy
classes with many wells) would inflate it. Balanced calls use the plate prior as scoring
does: each plate holds one group of siRNAs, inferred from the predictions, and each siRNA
is called at most once per plate. The groups are learnt here from the labelled plates and
stored with the run and its models, so scoring needs no labelled plate. The workflow that
trains a screen builds the prior and hands it to the trainer (train imports no balance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepnoise_engine.balance.assignment import argmax_calls, assign_once_per_plate
from deepnoise_engine.plate_groups import learn_groups, resolve_plate_groups
from deepnoise_engine.screen.model import sort_labels


@dataclass
class PlatePrior:
    """Treatment classes, plate groups and each well's plate, for a screen's wells.

    ``treatment``: class indices of the siRNAs (controls left out); ``groups``: label lists
    learnt from the labelled plates ([] when the screen has no group structure);
    ``group_classes``: the same as class-index arrays.
    """

    classes: list[str]
    treatment: np.ndarray
    groups: list[list[str]]
    group_classes: list[np.ndarray]
    well_plate: np.ndarray  # (n_wells,) plate keys "EXP/PLATE"
    is_treatment: np.ndarray  # (n_wells,) bool
    labelled_plates: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_wells(cls, wells: pd.DataFrame, classes: Sequence[str]) -> PlatePrior:
        """``wells``: one row per well with ``plate``, ``experiment``, ``well_type`` and
        ``label`` (class index, -1 when unlabelled)."""
        classes = [str(c) for c in classes]
        labels = wells["label"].to_numpy(np.int64)
        is_treat = wells["well_type"].astype(str).str.lower().eq("treatment").to_numpy()
        treat_labels = sorted({int(x) for x in labels[is_treat & (labels >= 0)]})
        treatment = np.array(treat_labels or range(len(classes)), np.int64)
        labelled: dict[str, list[str]] = {}
        known = wells[is_treat & (labels >= 0)]
        for plate, frame in known.groupby("plate", sort=True):
            labelled[str(plate)] = [classes[int(i)] for i in frame["label"]]
        groups = [sort_labels(list(g)) for g in learn_groups(labelled)]
        index = {c: i for i, c in enumerate(classes)}
        return cls(
            classes=classes, treatment=treatment, groups=groups,
            group_classes=[np.array(sorted(index[c] for c in g), np.int64) for g in groups],
            well_plate=wells["plate"].astype(str).to_numpy(),
            is_treatment=is_treat, labelled_plates=labelled,
        )

    def plate_groups(self, log_probs: np.ndarray, wells: np.ndarray, *,
                     use_labels: bool) -> dict[str, np.ndarray]:
        """Allowed classes per plate of ``wells``: the plate's group (from its labels when
        ``use_labels``, else inferred from ``log_probs`` (len(wells), K)), or every
        treatment class when the screen has no groups."""
        plates = self.well_plate[wells]
        if not self.groups:
            return {p: self.treatment for p in np.unique(plates)}
        probs = {p: np.exp(log_probs[plates == p]) for p in np.unique(plates)}
        by_exp: dict[str, list[str]] = {}
        for p in sorted(probs):
            by_exp.setdefault(p.split("/")[0], []).append(p)
        labelled = self.labelled_plates if use_labels else {}
        by_plate, _ = resolve_plate_groups(self.groups, by_exp, labelled, probs, self.classes)
        return {p: (self.group_classes[by_plate[p]] if p in by_plate else self.treatment)
                for p in probs}

    def treatment_wells(self, wells: np.ndarray) -> np.ndarray:
        return wells[self.is_treatment[wells]]

    def accuracy(self, log_probs: np.ndarray, wells: np.ndarray,
                 labels: np.ndarray) -> tuple[float, float]:
        """(raw, balanced) accuracy of treatment ``wells`` over treatment classes.

        ``log_probs``: (len(wells), K), rows of control wells are ignored. Raw: argmax over
        the treatment classes; balanced: one call per siRNA per plate within the plate's
        group inferred from the predictions (as scoring an unlabelled plate does).
        """
        keep = self.is_treatment[wells]
        if not keep.any():
            return float("nan"), float("nan")
        wells, log_probs, labels = wells[keep], log_probs[keep], labels[keep]
        raw = argmax_calls(log_probs, self.treatment)
        balanced = self.balanced_calls(log_probs, wells, use_labels=False)
        return float((raw == labels).mean()), float((balanced == labels).mean())

    def balanced_calls(self, log_probs: np.ndarray, wells: np.ndarray, *,
                       use_labels: bool) -> np.ndarray:
        """Per plate, each siRNA of the plate's group at most once (assignment)."""
        allowed = self.plate_groups(log_probs, wells, use_labels=use_labels)
        plates = self.well_plate[wells]
        out = np.full(len(wells), -1, np.int64)
        for plate, classes in allowed.items():
            idx = np.flatnonzero(plates == plate)
            out[idx], _ = assign_once_per_plate(log_probs[idx], classes)
        return out
