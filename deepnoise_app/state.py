"""Shared application state (Qt-free): the open screen, the selected plate and well, predictions.

Every DeepNoise widget of one napari viewer shares one :class:`AppState` (``state_for(viewer)``),
so the plate map, the well viewer, the mosaic and the workflow dock stay in step whether they are
opened by the ``deepnoise`` app or as plugin widgets in a plain ``napari``. Signals are psygnal
signals: they work with or without a Qt event loop.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from psygnal import Signal

from deepnoise_engine.screen.model import Plate, Screen, Well

#: Per-plate report files written by the score step: ``{experiment}_Plate{p}.csv``.
_REPORT_RE = re.compile(r"^(?P<exp>.+)_Plate(?P<plate>\d+)\.csv$")

PREDICTION_MODES = ("balanced", "raw")


def plate_key(experiment: str, index: int) -> str:
    """'HEPG2-01', 1 -> 'HEPG2-01/1' (same as ``Plate.key``)."""
    return f"{experiment}/{int(index)}"


def report_plate_key(name: str) -> str | None:
    """'HEPG2-01_Plate1.csv' -> 'HEPG2-01/1'; None for a name that is no plate report."""
    match = _REPORT_RE.match(name)
    return plate_key(match["exp"], int(match["plate"])) if match else None


def report_plate_keys(folder: str | Path) -> list[str]:
    """Plate keys ("EXP/P") of the per-plate reports in a score folder."""
    keys = (report_plate_key(p.name) for p in sorted(Path(folder).glob("*_Plate*.csv")))
    return [k for k in keys if k is not None]


def read_report(path: Path) -> pd.DataFrame:
    """Read one per-plate report CSV (the engine's reader when present, else pandas)."""
    try:
        from deepnoise_engine.report.plate_report import read_plate_report
    except ImportError:  # the report step may not be installed yet
        frame = pd.read_csv(path, dtype={"sirna_true": "string", "sirna_raw": "string",
                                         "sirna": "string"})
    else:
        frame = read_plate_report(path)
    return frame


class AppState:
    """What the user is looking at. Widgets listen to the signals and call the setters.

    Attributes: ``screen`` (Screen | None), ``plate`` (Plate | None), ``well`` (Well | None),
    ``predictions`` (dict plate key "EXP/P" -> per-plate report DataFrame), ``prediction_mode``
    ("balanced" | "raw"), ``score_dir`` (Path | None), ``models`` (list of dicts describing the
    loaded models, as the engine describes them).
    """

    screen_changed = Signal(object)  # Screen | None
    plate_changed = Signal(object)  # Plate | None
    well_changed = Signal(object)  # Well | None
    predictions_changed = Signal()
    prediction_mode_changed = Signal(str)
    models_changed = Signal()

    def __init__(self) -> None:
        self.screen: Screen | None = None
        self.plate: Plate | None = None
        self.well: Well | None = None
        self.predictions: dict[str, pd.DataFrame] = {}
        self.prediction_mode: str = "balanced"
        self.score_dir: Path | None = None
        self.models: list[dict[str, Any]] = []
        self._by_well: dict[str, pd.DataFrame] = {}  # plate key -> frame indexed by well
        self._calls: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # (key, mode)

    # -- screen / plate / well ---------------------------------------------------------------
    def set_screen(self, screen: Screen | None) -> None:
        """Open a screen: clears the selection and the predictions (they belong to a screen)."""
        self.screen = screen
        self.plate = None
        self.well = None
        had_predictions = bool(self.predictions)
        self.predictions = {}
        self._by_well = {}
        self._calls = {}
        self.score_dir = None
        self.screen_changed.emit(screen)
        self.plate_changed.emit(None)
        self.well_changed.emit(None)
        if had_predictions:
            self.predictions_changed.emit()

    def select_plate(self, experiment: str, index: int) -> Plate:
        """Select a plate; the selected well name is kept when the new plate has it."""
        if self.screen is None:
            raise RuntimeError("no screen is open")
        plate = self.screen.plate(experiment, int(index))
        if plate is self.plate:
            return plate
        old_well = self.well.name if self.well is not None else None
        self.plate = plate
        self.plate_changed.emit(plate)
        new_well = plate.wells.get(old_well) if old_well else None
        self.well = new_well
        self.well_changed.emit(new_well)
        return plate

    def select_well(self, name: str | None) -> Well | None:
        """Select a well of the current plate by name ('B02'); None clears the selection."""
        if name is None:
            well = None
        else:
            if self.plate is None:
                raise RuntimeError("no plate is selected")
            if name not in self.plate.wells:
                raise KeyError(f"no well {name} on plate {self.plate.key}")
            well = self.plate.wells[name]
        if well is self.well:
            return well
        self.well = well
        self.well_changed.emit(well)
        return well

    # -- predictions -------------------------------------------------------------------------
    def set_predictions(
        self, frames: dict[str, pd.DataFrame], score_dir: Path | None = None
    ) -> None:
        """Replace the predictions: plate key "EXP/P" -> per-plate report frame."""
        self.predictions = {str(k): v for k, v in frames.items()}
        self._by_well = {}
        self._calls = {}
        if score_dir is not None:
            self.score_dir = Path(score_dir)
        self.predictions_changed.emit()

    def load_predictions(self, score_dir: str | Path) -> int:
        """Load every ``{experiment}_Plate{p}.csv`` in ``score_dir``; returns the plate count.

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
        for path in sorted(folder.glob("*_Plate*.csv")):
            match = _REPORT_RE.match(path.name)
            if not match or (listed is not None and path.name not in listed):
                continue
            try:
                frame = read_report(path)
            except Exception as exc:  # report the file, whatever pandas raised
                raise ValueError(f"cannot read plate report {path}: {exc}") from exc
            if "well" not in frame.columns:
                raise ValueError(f"{path}: plate report has no 'well' column")
            frames[plate_key(match["exp"], int(match["plate"]))] = frame
        self.set_predictions(frames, score_dir=folder)
        return len(frames)

    def set_prediction_mode(self, mode: str) -> None:
        """'balanced' (after the per-plate assignment) or 'raw' (argmax)."""
        if mode not in PREDICTION_MODES:
            raise ValueError(f"prediction mode must be one of {PREDICTION_MODES}, not {mode!r}")
        if mode != self.prediction_mode:
            self.prediction_mode = mode
            self.prediction_mode_changed.emit(mode)

    def set_models(self, models: list[dict[str, Any]]) -> None:
        self.models = list(models)
        self.models_changed.emit()

    def plate_predictions(self, plate: Plate | str | None = None) -> pd.DataFrame | None:
        """The report frame of a plate (default: the selected one) indexed by well name."""
        if plate is None:
            plate = self.plate
        if plate is None:
            return None
        key = plate if isinstance(plate, str) else plate.key
        if key not in self._by_well:
            frame = self.predictions.get(key)
            if frame is None:
                return None
            self._by_well[key] = frame.drop_duplicates("well").set_index("well", drop=False)
        return self._by_well[key]

    def plate_calls(self, plate: Plate | str | None = None) -> dict[str, dict[str, Any]]:
        """Well name -> prediction (see ``well_prediction``) for a plate in the current mode.

        Computed once per plate and mode from the report's records (a per-row ``.loc`` costs
        pandas ~1 ms; a 384-well plate map must colour in well under 0.5 s).
        """
        if plate is None:
            plate = self.plate
        if plate is None:
            return {}
        key = plate if isinstance(plate, str) else plate.key
        cached = self._calls.get((key, self.prediction_mode))
        if cached is None:
            frame = self.predictions.get(key)
            cached = {}
            if frame is not None:
                for record in frame.to_dict("records"):
                    name = record.get("well")
                    if isinstance(name, str) and name not in cached:
                        cached[name] = prediction_from_row(record, self.prediction_mode)
            self._calls[(key, self.prediction_mode)] = cached
        return cached

    def well_prediction(self, well: str, plate: Plate | str | None = None) -> dict[str, Any] | None:
        """The prediction of one well in the current mode, or None.

        Keys: ``sirna`` (called siRNA), ``confidence``, ``sirna_true``, ``correct``
        (bool | None), ``changed`` (bool | None), ``top`` (list of (siRNA, prob)).
        """
        return self.plate_calls(plate).get(well)


def _value(row: Mapping[str, Any], column: str) -> Any:
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
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def prediction_from_row(row: Mapping[str, Any], mode: str = "balanced") -> dict[str, Any]:
    """One report row (Series or dict) -> the prediction shown for a well in ``mode``."""
    if mode == "raw":
        sirna = _label(_value(row, "sirna_raw"))
        confidence = _value(row, "prob_raw")
        correct = _flag(_value(row, "correct_raw"))
    else:
        sirna = _label(_value(row, "sirna"))
        confidence = _value(row, "confidence")
        correct = _flag(_value(row, "correct"))
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


# -- one state per viewer -----------------------------------------------------------------------
_STATES: dict[int, tuple[Any, AppState]] = {}


def unwrap_viewer(viewer: Any) -> Any:
    """The real viewer behind napari's PublicOnlyProxy (plugin widgets receive the proxy)."""
    return getattr(viewer, "__wrapped__", viewer)


def state_for(viewer: Any) -> AppState:
    """The AppState shared by every DeepNoise widget of ``viewer`` (created on first use).

    napari hands plugin widgets a PublicOnlyProxy of the viewer: it is unwrapped, so the
    app's docks and plugin widgets of the same viewer share one state.
    """
    viewer = unwrap_viewer(viewer)
    key = id(viewer)
    entry = _STATES.get(key)
    if entry is not None:
        ref, state = entry
        if ref() is viewer:
            return state
    state = AppState()
    try:
        ref = weakref.ref(viewer, lambda _r, key=key: _STATES.pop(key, None))
    except TypeError:  # not weak-referenceable: keep it alive with the state
        ref = lambda viewer=viewer: viewer  # noqa: E731
    _STATES[key] = (ref, state)
    return state
