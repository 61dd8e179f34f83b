"""Plate geometry, well names and the small helpers of the data model."""

from __future__ import annotations

import pytest

from deepnoise_engine.screen.errors import (
    BadWellError,
    MissingImageError,
    ScreenError,
    error_class,
)
from deepnoise_engine.screen.model import (
    PlateFormat,
    Problem,
    WellType,
    id_code,
    parse_well,
    site_id,
    sort_labels,
    well_name,
)


@pytest.mark.parametrize(
    ("count", "rows", "columns", "first", "last"),
    [(96, 8, 12, "A01", "H12"), (384, 16, 24, "A01", "P24"), (1536, 32, 48, "A01", "AF48")],
)
def test_standard_formats(count: int, rows: int, columns: int, first: str, last: str) -> None:
    fmt = PlateFormat.from_well_count(count)
    assert (fmt.rows, fmt.columns, fmt.well_count) == (rows, columns, count)
    wells = fmt.all_wells()
    assert len(wells) == count == len(set(wells))
    assert (wells[0], wells[-1]) == (first, last)
    # every name parses back to its position
    for index, name in enumerate(wells):
        assert parse_well(name) == divmod(index, columns)


def test_1536_rows_after_z_are_double_letters() -> None:
    fmt = PlateFormat.from_well_count(1536)
    row_names = [fmt.well_name(r, 0)[:-2] for r in range(fmt.rows)]
    assert row_names[25] == "Z"
    assert row_names[26:] == ["AA", "AB", "AC", "AD", "AE", "AF"]
    assert parse_well("AF48") == (31, 47)
    assert parse_well("aa01") == (26, 0)
    assert fmt.contains("AF48") and not PlateFormat.from_well_count(384).contains("AA01")


def test_parse_well_rejects_bad_names() -> None:
    for bad in ["", "B", "02", "B0", "B-2", "ABC1", "B1234"]:
        with pytest.raises(ValueError, match="bad well name"):
            parse_well(bad)
    assert parse_well("B2") == parse_well("B02") == (1, 1)
    assert well_name(1, 1) == "B02"


def test_smallest_fitting_and_unknown_format() -> None:
    assert PlateFormat.smallest_fitting(["A01", "H12"]).well_count == 96
    assert PlateFormat.smallest_fitting(["A01", "H13"]).well_count == 384
    assert PlateFormat.smallest_fitting(["I01"]).well_count == 384
    assert PlateFormat.smallest_fitting(["Q01"]).well_count == 1536
    with pytest.raises(ValueError, match="fit no plate"):
        PlateFormat.smallest_fitting(["A49"])
    with pytest.raises(ValueError, match="unknown plate format"):
        PlateFormat.from_well_count(100)
    with pytest.raises(ValueError, match="outside"):
        PlateFormat.from_well_count(96).well_name(8, 0)


def test_ids_labels_and_problems() -> None:
    assert id_code("HEPG2-01", 1, "B02") == "HEPG2-01_1_B02"
    assert site_id("HEPG2-01", 1, "B02", 2) == "HEPG2-01_1_B02_2"
    assert sort_labels({"10", "9", "1138", "sirna_2", "sirna_10"}) == [
        "9",
        "10",
        "1138",
        "sirna_2",
        "sirna_10",
    ]
    assert WellType("negative_control").is_control and not WellType.TREATMENT.is_control
    problem = Problem("bad_well", "bad well name 'Z99'", file="train.csv", row=3)
    assert str(problem) == "train.csv:3: bad well name 'Z99'"
    assert problem.to_dict()["row"] == 3


def test_error_class_maps_problem_kinds() -> None:
    assert error_class("bad_well") is BadWellError
    assert error_class("missing_image") is MissingImageError
    assert error_class("something else") is ScreenError
    err = error_class("bad_well")("bad well name 'Z99'", file="train.csv", row=3)
    assert str(err) == "train.csv, row 3: bad well name 'Z99'"
