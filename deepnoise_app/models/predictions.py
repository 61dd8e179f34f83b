"""Predictions (Qt-free): the score step's per-plate reports and the call shown for a well.

Reports are ``{experiment}_Plate{p}.csv`` (docs/reports.md); their names and dtypes are the
engine's (``deepnoise_engine.report.plate_report``). Plates are keyed "EXP/P" like
``Plate.key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

from deepnoise_engine.report.plate_report import (
    list_plate_reports,
    parse_plate_report_name,
    read_plate_report,
)

PREDICTION_MODES = ("balanced", "raw")


class WellPrediction(TypedDict):
    """The call shown for a well in one prediction mode."""

    sirna: str | None  # the called siRNA
    confidence: float | None
    sirna_true: str | None
    correct: bool | None
    changed: bool | None  # changed by the per-plate balancing
    top: list[tuple[str, float]]  # (siRNA, probability), best first


def plate_key(experiment: str, index: int) -> str:
    """'HEPG2-01', 1 -> 'HEPG2-01/1' (same as ``Plate.key``)."""
    return f"{experiment}/{int(index)}"


def split_plate_key(key: str) -> tuple[str, int]:
    """'HEPG2-01/1' -> ('HEPG2-01', 1)."""
    experiment, _, index = key.rpartition("/")
    return experiment, int(index)


def report_plate_key(name: str) -> str | None:
    """'HEPG2-01_Plate1.csv' -> 'HEPG2-01/1'; None for a name that is no plate report."""
    parsed = parse_plate_report_name(name)
    return plate_key(*parsed) if parsed else None


def report_plate_keys(folder: str | Path) -> list[str]:
    """Plate keys ("EXP/P") of the per-plate reports in a score folder."""
    return [plate_key(exp, index) for exp, index in list_plate_reports(Path(folder))]


def read_score_folder(score_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every per-plate report of a complete score folder: plate key -> report frame.

    Raises FileNotFoundError when the folder is missing and ValueError naming the file
    when a report cannot be read or the folder holds a partial set (a scoring run that
    stopped while writing: its ``manifest.json`` does not say complete).
    """
    from deepnoise_engine.report.output_set import check_score_folder

    folder = Path(score_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"score folder not found: {folder}")
    listed = check_score_folder(folder)  # refuses a partial set (ValueError)
    frames: dict[str, pd.DataFrame] = {}
    for (exp, index), path in sorted(list_plate_reports(folder).items(),
                                     key=lambda item: item[1].name):
        if listed is not None and path.name not in listed:
            continue
        try:
            frame = read_plate_report(path)
        except Exception as exc:  # report the file, whatever pandas raised
            raise ValueError(f"cannot read plate report {path}: {exc}") from exc
        if "well" not in frame.columns:
            raise ValueError(f"{path}: plate report has no 'well' column")
        frames[plate_key(exp, index)] = frame
    return frames


def _value(row: Mapping[str, Any], column: str) -> Any:
    """A cell's value, None when missing or NA."""
    value = row.get(column)
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _label(value: Any) -> str | None:
    """An siRNA label as text: 513.0 -> '513'."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _flag(value: Any) -> bool | None:
    """A boolean cell (bool, 0/1 or 'true'/'yes' text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def prediction_from_row(row: Mapping[str, Any], mode: str = "balanced") -> WellPrediction:
    """One report row (Series or dict) -> the prediction shown for a well in ``mode``."""
    columns = ("sirna_raw", "prob_raw", "correct_raw") if mode == "raw" else (
        "sirna", "confidence", "correct")
    sirna = _label(_value(row, columns[0]))
    confidence = _value(row, columns[1])
    correct = _flag(_value(row, columns[2]))
    top: list[tuple[str, float]] = []
    for k in range(1, 6):
        name = _label(_value(row, f"top{k}_sirna"))
        prob = _value(row, f"top{k}_prob")
        if name is not None and prob is not None:
            top.append((name, float(prob)))
    truth = _label(_value(row, "sirna_true"))
    if correct is None and truth is not None and sirna is not None:
        correct = truth == sirna
    return {
        "sirna": sirna,
        "confidence": None if confidence is None else float(confidence),
        "sirna_true": truth,
        "correct": correct,
        "changed": _flag(_value(row, "changed_by_balancing")),
        "top": top,
    }


def plate_calls(frame: pd.DataFrame | None, mode: str) -> dict[str, WellPrediction]:
    """Well name -> prediction for one report frame (the first row of a repeated well)."""
    calls: dict[str, WellPrediction] = {}
    if frame is not None:
        for record in frame.to_dict("records"):
            name = record.get("well")
            if isinstance(name, str) and name not in calls:
                calls[name] = prediction_from_row(record, mode)
    return calls
