"""Review decisions: saved atomically, read back, bad files named with their row."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnoise_engine.report import ReportError
from deepnoise_engine.report.review import read_decisions, review_path, set_decision


def test_decisions_round_trip(tmp_path: Path) -> None:
    assert read_decisions(tmp_path).empty
    set_decision(tmp_path, "HEPG2-01_1_B02", decision="accepted")
    set_decision(tmp_path, "HEPG2-01_1_B03", note="out of focus, see site 2")
    frame = set_decision(tmp_path, "HEPG2-01_1_B02", note="ok")  # keeps the decision
    again = read_decisions(tmp_path)
    assert again.loc["HEPG2-01_1_B02", "decision"] == "accepted"
    assert again.loc["HEPG2-01_1_B02", "note"] == "ok"
    assert again.loc["HEPG2-01_1_B03", "decision"] == ""
    assert again.loc["HEPG2-01_1_B03", "note"] == "out of focus, see site 2"
    assert list(frame.index) == list(again.index)
    assert [p.name for p in tmp_path.iterdir()] == ["review.csv"]  # no temp file left


def test_bad_decision_names_file_and_row(tmp_path: Path) -> None:
    review_path(tmp_path).write_text("id_code,decision,note,updated\n"
                                     "A_1_B02,accepted,,\nA_1_B03,maybe,,\n")
    with pytest.raises(ReportError, match=r"review\.csv, row 3: decision must be"):
        read_decisions(tmp_path)
    with pytest.raises(ValueError, match="decision must be"):
        set_decision(tmp_path, "A_1_B02", decision="perhaps")
