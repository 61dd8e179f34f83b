"""Per-plate reports, the submission CSV, summaries, plate-map figures and export.

Torch-free: the app reads reports with ``read_plate_report`` and exports with
``export_reports`` directly.
"""

from deepnoise_engine.report.export import export_reports, parse_plates
from deepnoise_engine.report.io import OutputExistsError, ReportError
from deepnoise_engine.report.plate_report import (
    COLUMNS,
    DTYPES,
    list_plate_reports,
    plate_report_name,
    read_plate_report,
    to_report_frame,
    write_plate_report,
)
from deepnoise_engine.report.submission import read_submission, write_submission
from deepnoise_engine.report.summary import read_summary, summarise, write_summary

__all__ = [
    "COLUMNS",
    "DTYPES",
    "OutputExistsError",
    "ReportError",
    "export_reports",
    "list_plate_reports",
    "parse_plates",
    "plate_report_name",
    "read_plate_report",
    "read_submission",
    "read_summary",
    "summarise",
    "to_report_frame",
    "write_plate_report",
    "write_submission",
    "write_summary",
]
