"""The browser's summary of a screen (Qt-free): counts and problems per plate."""

from __future__ import annotations

from collections import Counter

from deepnoise_app.models.screen_summary import (
    compact,
    problem_tooltip,
    screen_summary,
    tpn,
)


def test_summary_counts_wells_and_sites(small_screen) -> None:
    summary = screen_summary(small_screen)
    assert screen_summary(small_screen) is summary  # once per screen
    plate = next(small_screen.plates())
    plate_summary = summary.plates[plate.key]
    assert plate_summary.counts == plate.well_counts()
    assert plate_summary.sites == sum(len(w.sites) for w in plate.wells.values())
    assert plate_summary.problems == []
    assert set(summary.labelled) == set(small_screen.experiments)


def test_counts_and_problem_tooltips() -> None:
    assert tpn({"treatment": 3, "negative_control": 1}) == "3/0/1"
    assert (compact(9999), compact(27088)) == ("9999", "27k")
    lines = [f"B0{i} site 1: missing channel w5" for i in range(15)]
    text = problem_tooltip("P1: 15 problems", lines, Counter({"missing_channel": 15}))
    assert text.splitlines()[:2] == ["P1: 15 problems", "15 missing channel"]
    assert text.splitlines()[-1] == "... 3 more"
