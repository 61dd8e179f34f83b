"""Per-plate balancing and the report rows of a scored screen (torch-free).

Each plate's treatment wells are balanced within the plate's group (balance,
plate_groups); every used well gets a report row (report's columns): raw and balanced
call, top-k, confidence after balancing, and the truth where known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax, softmax

from deepnoise_engine.balance import balanced_calls
from deepnoise_engine.contract import Reporter
from deepnoise_engine.plate_groups import PlateGroups, PlateKey, plate_groups_for
from deepnoise_engine.report.export import parse_plates
from deepnoise_engine.report.plate_report import TOP_K, to_report_frame
from deepnoise_engine.screen.model import Screen, WellType, parse_well

#: Hidden labels written by ``make_demo`` for its test experiments (evaluation only).
ANSWERS_FILE = Path("answers") / "test_answers.csv"


def read_answers(root: Path) -> dict[str, str]:
    """The hidden labels of a demo screen's test experiments (``{}`` when there are none)."""
    path = Path(root) / ANSWERS_FILE
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"id_code", "sirna"} <= set(frame.columns):
        raise ValueError(f"{path}: expected columns id_code and sirna")
    return dict(zip(frame["id_code"], frame["sirna"], strict=True))


def choose_plates(screen: Screen, plates: Iterable[str | PlateKey] | str | None
                  ) -> list[PlateKey]:
    """``plates`` (``"EXP:PLATE,..."`` or keys; None = every plate) checked against the
    screen, in the given order without repeats."""
    wanted = parse_plates(plates)
    every = [(p.experiment, p.index) for p in screen.plates()]
    if wanted is None:
        return every
    unknown = [f"{e}:{p}" for e, p in wanted if (e, p) not in set(every)]
    if unknown:
        raise ValueError(f"plate(s) {', '.join(unknown)} not in screen {screen.root}")
    return list(dict.fromkeys(wanted))


def _treatment_classes(screen: Screen, classes: Sequence[str]) -> np.ndarray:
    """Class indices that are not a control label of the screen (all when none is)."""
    control_labels = {w.sirna for _, _, w in screen.wells()
                      if w.well_type.is_control and w.sirna is not None}
    treatment_idx = np.array([i for i, c in enumerate(classes) if c not in control_labels],
                             dtype=np.int64)
    return treatment_idx if treatment_idx.size else np.arange(len(classes))


def _plate_allowed(groups: PlateGroups, key: PlateKey, class_index: dict[str, int],
                   treatment_idx: np.ndarray, method: str) -> np.ndarray:
    """The classes a plate's treatment wells may be called: its group's, else every
    treatment class."""
    group = groups.by_plate.get(key)
    if group is not None and method != "none":
        members = np.array(sorted(class_index[c] for c in groups.groups[group]
                                  if c in class_index), dtype=np.int64)
        if members.size:
            return members
    return treatment_idx


def balance_and_report(
    screen: Screen,
    plates: Sequence[PlateKey],
    classes: Sequence[str],
    log_probs: dict[str, np.ndarray],
    method: str,
    *,
    reporter: Reporter | None = None,
    model_groups: Sequence[Sequence[str]] = (),
) -> tuple[dict[PlateKey, pd.DataFrame], PlateGroups, int]:
    """Balance each plate's treatment wells and build its report rows.

    ``log_probs``: id_code -> (K,) log-probabilities over ``classes``. Returns the report
    frames per plate, the plate groups used and the number of fallback wells (plates with
    more treatment wells than allowed classes).
    """
    reporter = reporter or Reporter()
    answers = read_answers(screen.root)
    class_index = {c: i for i, c in enumerate(classes)}
    treatment_idx = _treatment_classes(screen, classes)
    # Treatment wells with predictions, per plate (for group inference and balancing).
    treat = {key: [w.id_code for w in screen.plate(*key).used_wells()
                   if w.well_type == WellType.TREATMENT and w.id_code in log_probs]
             for key in plates}
    probs = {key: np.exp(np.stack([log_probs[i] for i in ids])) if ids else
             np.zeros((0, len(classes))) for key, ids in treat.items()}
    groups = (plate_groups_for(screen, plates, probs, classes, model_groups)
              if method != "none" else PlateGroups([]))
    frames: dict[PlateKey, pd.DataFrame] = {}
    fallbacks = 0
    for n, key in enumerate(plates, start=1):
        allowed = _plate_allowed(groups, key, class_index, treatment_idx, method)
        calls: dict[str, int] = {}
        if treat[key]:
            lp = np.stack([log_probs[i] for i in treat[key]])
            chosen, fallback = balanced_calls(lp, allowed, method)
            fallbacks += int(fallback.sum())
            calls = dict(zip(treat[key], (int(c) for c in chosen), strict=True))
        cell_type = screen.experiments[key[0]].cell_type
        rows = [well_row(screen, cell_type, key, well, classes, log_probs.get(well.id_code),
                         calls.get(well.id_code), allowed, answers, groups.by_plate.get(key))
                for well in screen.plate(*key).used_wells()]
        frames[key] = to_report_frame(rows)
        reporter.progress("balance", n, len(plates))
    return frames, groups, fallbacks


def well_row(
    screen: Screen,
    cell_type: str,
    key: PlateKey,
    well: Any,
    classes: Sequence[str],
    lp: np.ndarray | None,
    call: int | None,
    allowed: np.ndarray,
    answers: dict[str, str],
    group: int | None,
) -> dict[str, Any]:
    """One report row; ``call`` is the balanced class index of a treatment well (None for
    controls, which keep their raw call)."""
    id_code = well.id_code
    truth = well.sirna if well.sirna is not None else answers.get(id_code)
    row: dict[str, Any] = {
        "id_code": id_code, "experiment": key[0], "plate": key[1], "well": well.name,
        "row": well.name[: len(well.name) - len(well.name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))],
        "column": parse_well(well.name)[1] + 1,
        "cell_type": cell_type, "well_type": well.well_type.value,
        "sites_used": sum(1 for s in well.sites if s.ok),
        "sirna_true": truth,
        "plate_group": group if well.well_type == WellType.TREATMENT else None,
    }
    if lp is None:  # a problem well: no usable site, no call
        row["sites_used"] = 0
        return row
    row.update(_call_fields(lp, call, allowed, classes, truth))
    return row


def _call_fields(lp: np.ndarray, call: int | None, allowed: np.ndarray,
                 classes: Sequence[str], truth: str | None) -> dict[str, Any]:
    """Top-k, raw and balanced call, confidence and margin after balancing, correctness."""
    probs = np.exp(lp)
    raw = int(np.argmax(lp))
    fields: dict[str, Any] = {}
    for i, c in enumerate(np.argsort(-probs)[:TOP_K], start=1):
        fields[f"top{i}_sirna"], fields[f"top{i}_prob"] = classes[c], float(probs[c])
    if call is None:  # controls are not balanced: raw call over all classes
        call, cand = raw, np.arange(len(classes))
    else:
        cand = allowed
    # Confidence after balancing: probability renormalised over the plate's allowed classes.
    p_allowed = softmax(lp[cand])
    pos = int(np.flatnonzero(cand == call)[0]) if np.any(cand == call) else None
    conf = float(p_allowed[pos]) if pos is not None else float(probs[call])
    others = np.delete(p_allowed, pos) if pos is not None else p_allowed
    fields.update(
        sirna_raw=classes[raw], prob_raw=float(probs[raw]), sirna=classes[call],
        confidence=conf, margin=conf - float(others.max()) if others.size else conf,
        changed_by_balancing=call != raw,
        correct_raw=None if truth is None else classes[raw] == truth,
        correct=None if truth is None else classes[call] == truth,
    )
    return fields


def score_plates_from_log_probs(
    screen: Screen,
    log_probs: dict[str, np.ndarray],
    classes: Sequence[str],
    *,
    plates: Iterable[str | PlateKey] | str | None = None,
    balance: str = "assignment",
) -> tuple[dict[PlateKey, pd.DataFrame], dict[str, Any]]:
    """Balance + report rows from precomputed per-well log-probabilities (torch-free; used
    by benchmarks and tests). Returns (frames per plate, plate groups as a dict)."""
    chosen = choose_plates(screen, plates)
    lp = {k: log_softmax(np.asarray(v, dtype=np.float64)) for k, v in log_probs.items()}
    frames, groups, _ = balance_and_report(screen, chosen, classes, lp, balance)
    return frames, groups.to_dict()
