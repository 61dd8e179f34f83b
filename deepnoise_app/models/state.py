"""Shared application state (Qt-free): the open screen, the selected plate and well, predictions.

Every DeepNoise widget of one napari viewer shares one :class:`AppState`
(``deepnoise_app.state.state_for(viewer)``), so the plate map, the well viewer, the mosaic and
the workflow dock stay in step whether they are opened by the ``deepnoise`` app or as plugin
widgets in a plain ``napari``. Signals are psygnal signals: they work with or without a Qt
event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from psygnal import Signal

from deepnoise_app.models.predictions import (
    PREDICTION_MODES,
    WellPrediction,
    plate_calls,
    read_score_folder,
)
from deepnoise_engine.screen.model import Plate, Screen, Well


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
        self._calls: dict[tuple[str, str], dict[str, WellPrediction]] = {}  # (key, mode)

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

    def go_to_well(self, experiment: str, index: int, name: str) -> Well | None:
        """Select a well of any plate (the QC map, the review queue): KeyError when the open
        screen has no such plate or well, RuntimeError when no screen is open."""
        self.select_plate(experiment, int(index))
        return self.select_well(name)

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

        Raises as ``read_score_folder`` does (a missing folder, a bad or partial set).
        """
        frames = read_score_folder(score_dir)
        self.set_predictions(frames, score_dir=Path(score_dir))
        return len(frames)

    def set_prediction_mode(self, mode: str) -> None:
        """'balanced' (after the per-plate assignment) or 'raw' (argmax)."""
        if mode not in PREDICTION_MODES:
            raise ValueError(f"prediction mode must be one of {PREDICTION_MODES}, not {mode!r}")
        if mode != self.prediction_mode:
            self.prediction_mode = mode
            self.prediction_mode_changed.emit(mode)

    def set_models(self, models: list[dict[str, Any]]) -> None:
        """The loaded models (as the engine describes them)."""
        self.models = list(models)
        self.models_changed.emit()

    def _key(self, plate: Plate | str | None) -> str | None:
        """A plate's key (default: the selected plate's)."""
        plate = self.plate if plate is None else plate
        if plate is None:
            return None
        return plate if isinstance(plate, str) else plate.key

    def plate_predictions(self, plate: Plate | str | None = None) -> pd.DataFrame | None:
        """The report frame of a plate (default: the selected one) indexed by well name."""
        key = self._key(plate)
        if key is None:
            return None
        if key not in self._by_well:
            frame = self.predictions.get(key)
            if frame is None:
                return None
            self._by_well[key] = frame.drop_duplicates("well").set_index("well", drop=False)
        return self._by_well[key]

    def plate_calls(self, plate: Plate | str | None = None) -> dict[str, WellPrediction]:
        """Well name -> prediction (see ``well_prediction``) for a plate in the current mode.

        Computed once per plate and mode from the report's records (a per-row ``.loc`` costs
        pandas ~1 ms; a 384-well plate map must colour in well under 0.5 s).
        """
        key = self._key(plate)
        if key is None:
            return {}
        cached = self._calls.get((key, self.prediction_mode))
        if cached is None:
            cached = plate_calls(self.predictions.get(key), self.prediction_mode)
            self._calls[(key, self.prediction_mode)] = cached
        return cached

    def well_prediction(self, well: str, plate: Plate | str | None = None
                        ) -> WellPrediction | None:
        """The prediction of one well in the current mode, or None (keys: WellPrediction)."""
        return self.plate_calls(plate).get(well)
