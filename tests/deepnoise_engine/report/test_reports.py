"""Per-plate reports, submission, summary, plate maps and export on real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepnoise_engine.report import (
    COLUMNS,
    OutputExistsError,
    ReportError,
    export_reports,
    list_plate_reports,
    parse_plates,
    plate_report_name,
    read_plate_report,
    read_submission,
    summarise,
    to_report_frame,
    write_plate_report,
    write_submission,
    write_summary,
)
from deepnoise_engine.report.figure import (
    confidence_colour,
    figure_image,
    plate_map_figure,
    plate_map_image,
)


def _rows(experiment: str = "HEPG2-01", plate: int = 1) -> list[dict]:
    """Two treatment wells (one right, one fixed by balancing), a control, a problem well."""
    base = {"experiment": experiment, "plate": plate, "cell_type": experiment.split("-")[0]}
    def well(name: str, **kw: object) -> dict:
        return {**base, "id_code": f"{experiment}_{plate}_{name}", "well": name, "row": name[0],
                "column": int(name[1:]), **kw}
    top = {f"top{i}_sirna": str(10 + i) for i in range(1, 6)}
    top |= {f"top{i}_prob": 0.5 / i for i in range(1, 6)}
    return [
        well("B02", well_type="negative_control", sites_used=2, sirna_true="1138",
             sirna_raw="1138", prob_raw=0.9, sirna="1138", confidence=0.9, margin=0.8,
             changed_by_balancing=False, correct_raw=True, correct=True, **top),
        well("B03", well_type="treatment", sites_used=2, sirna_true="513", sirna_raw="513",
             prob_raw=0.7, sirna="513", confidence=0.75, margin=0.5,
             changed_by_balancing=False, correct_raw=True, correct=True, plate_group=2, **top),
        well("C03", well_type="treatment", sites_used=1, sirna_true="7", sirna_raw="513",
             prob_raw=0.4, sirna="7", confidence=0.3, margin=-0.1,
             changed_by_balancing=True, correct_raw=False, correct=True, plate_group=2, **top),
        well("D05", well_type="treatment", sites_used=0, plate_group=2),  # problem well
    ]


def test_report_round_trip_keeps_columns_dtypes_and_values(tmp_path: Path) -> None:
    frame = to_report_frame(_rows())
    path = write_plate_report(frame, tmp_path / plate_report_name("HEPG2-01", 1))
    assert path.name == "HEPG2-01_Plate1.csv"
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == COLUMNS
    back = read_plate_report(path)
    pd.testing.assert_frame_equal(back, frame)
    assert back["sirna_true"].iloc[1] == "513"  # labels stay strings
    assert str(back["plate"].dtype) == "Int64" and str(back["correct"].dtype) == "boolean"
    assert back["sirna"].isna().iloc[3] and back["sites_used"].iloc[3] == 0
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left


def test_existing_report_is_kept_without_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "HEPG2-01_Plate1.csv"
    path.write_text("precious\n", encoding="utf-8")
    with pytest.raises(OutputExistsError, match=r"HEPG2-01_Plate1\.csv"):
        write_plate_report(to_report_frame(_rows()), path)
    assert path.read_text(encoding="utf-8") == "precious\n"
    write_plate_report(to_report_frame(_rows()), path, overwrite=True)
    assert len(read_plate_report(path)) == 4


def test_bad_report_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not found"):
        read_plate_report(tmp_path / "nope.csv")
    frame = to_report_frame(_rows())
    frame.drop(columns=["margin"]).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ReportError, match=r"a\.csv: missing column\(s\) margin"):
        read_plate_report(tmp_path / "a.csv")
    bad = frame.astype({"prob_raw": object})
    bad.loc[2, "prob_raw"] = "high"
    bad.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ReportError, match=r"b\.csv, row 4: bad value in column 'prob_raw'"):
        read_plate_report(tmp_path / "b.csv")


def test_submission_has_treatment_wells_and_integer_labels(tmp_path: Path) -> None:
    frame = to_report_frame(_rows())
    path = write_submission(frame, tmp_path / "submission.csv")
    text = path.read_text(encoding="utf-8").splitlines()
    assert text == ["id_code,sirna", "HEPG2-01_1_B03,513", "HEPG2-01_1_C03,7"]
    assert read_submission(path)["sirna"].tolist() == ["513", "7"]
    with pytest.raises(OutputExistsError):
        write_submission(frame, path)


def test_summary_accuracy_raw_vs_balanced(tmp_path: Path) -> None:
    frame = pd.concat([to_report_frame(_rows("HEPG2-01", 1)), to_report_frame(_rows("U2OS-01", 2))])
    summary = summarise(frame, {"balance": "assignment", "tta": 8})
    acc = summary["accuracy"]
    assert acc["labelled_wells"] == 4 and acc["treatment_wells"] == 4
    assert acc["raw"] == pytest.approx(0.5) and acc["balanced"] == pytest.approx(1.0)
    assert acc["changed_by_balancing"] == 2
    assert summary["by_plate"]["U2OS-01/2"]["plate_group"] == 2
    assert set(summary["by_cell_type"]) == {"HEPG2", "U2OS"}
    assert summary["wells_without_call"] == 2 and summary["controls_accuracy"] == 1.0
    paths = write_summary(summary, tmp_path)
    assert json.loads(paths[0].read_text())["accuracy"]["balanced"] == 1.0
    md = paths[1].read_text()
    assert "raw 50.0%, balanced 100.0%" in md and "| U2OS-01/2 | 2 |" in md
    with pytest.raises(OutputExistsError, match="summary"):
        write_summary(summary, tmp_path)


def test_plate_map_colours_wells_by_confidence(tmp_path: Path) -> None:
    frame = to_report_frame(_rows())
    fig = plate_map_figure(frame)
    image = figure_image(fig)
    assert image.mode == "RGB"
    ax = fig.axes[0]
    assert ax.get_xlim() == (-0.5, 11.5)  # 96-well format (wells up to D05 fit)

    def well_pixel(row: int, column: int) -> tuple[int, int, int]:
        # near the cell's top-right corner: clear of the call's label and the grid lines
        x, y = ax.transData.transform((column + 0.3, row - 0.3))
        return image.getpixel((int(x), image.height - int(y)))

    assert well_pixel(1, 2) == confidence_colour(0.75)  # B03
    assert well_pixel(3, 4) == (200, 200, 200)  # D05: a problem well, no call
    assert confidence_colour(0.0) != confidence_colour(1.0)
    assert plate_map_image(frame).size == image.size


def test_export_selected_plates_with_figures(tmp_path: Path) -> None:
    score = tmp_path / "score"
    for exp, plate in [("HEPG2-01", 1), ("HEPG2-01", 2), ("U2OS-01", 1)]:
        write_plate_report(to_report_frame(_rows(exp, plate)),
                           score / plate_report_name(exp, plate))
    assert list(list_plate_reports(score)) == [("HEPG2-01", 1), ("HEPG2-01", 2), ("U2OS-01", 1)]
    out = tmp_path / "export"
    written = export_reports(score, out, plates="HEPG2-01:2,U2OS-01:1", figures=True)
    names = sorted(p.name for p in written)
    assert names == ["HEPG2-01_Plate2.csv", "HEPG2-01_Plate2.png", "U2OS-01_Plate1.csv",
                     "U2OS-01_Plate1.png", "submission.csv"]
    assert (out / "U2OS-01_Plate1.csv").read_bytes() == (score / "U2OS-01_Plate1.csv").read_bytes()
    sub = read_submission(out / "submission.csv")
    assert sub["id_code"].str.startswith(("HEPG2-01_2_", "U2OS-01_1_")).all() and len(sub) == 4
    with Image.open(out / "HEPG2-01_Plate2.png") as im:
        assert im.size[0] > 200 and np.asarray(im).std() > 10
    # again without overwrite: refused, nothing changed
    before = (out / "submission.csv").read_bytes()
    with pytest.raises(OutputExistsError):
        export_reports(score, out, plates=[("HEPG2-01", 2)])
    assert (out / "submission.csv").read_bytes() == before
    with pytest.raises(ReportError, match="HEPG2-01:9"):
        export_reports(score, tmp_path / "x", plates=["HEPG2-01:9"])


def test_parse_plates() -> None:
    assert parse_plates(None) is None
    assert parse_plates("HEPG2-01:1, U2OS-02:3") == [("HEPG2-01", 1), ("U2OS-02", 3)]
    assert parse_plates(["HEPG2-01/2"]) == [("HEPG2-01", 2)]
    with pytest.raises(ValueError, match="HEPG2-01"):
        parse_plates(["HEPG2-01"])
