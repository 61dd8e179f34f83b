"""Predictions (Qt-free): report rows -> the call shown for a well, report names."""

from __future__ import annotations

import pandas as pd

from deepnoise_app.models.predictions import (
    plate_key,
    prediction_from_row,
    report_plate_key,
    split_plate_key,
)


def test_prediction_from_row_unknown_truth() -> None:
    row = pd.Series({"well": "B02", "sirna": "5", "confidence": 0.4, "sirna_true": pd.NA,
                     "correct": pd.NA, "sirna_raw": "6", "prob_raw": 0.3})
    pred = prediction_from_row(row)
    assert pred["sirna"] == "5" and pred["correct"] is None and pred["sirna_true"] is None
    assert prediction_from_row(row, "raw")["sirna"] == "6"


def test_report_names_give_plate_keys() -> None:
    assert report_plate_key("HEPG2-01_Plate1.csv") == "HEPG2-01/1"
    assert report_plate_key("summary.json") is None
    assert split_plate_key(plate_key("HEPG2-01", 3)) == ("HEPG2-01", 3)
