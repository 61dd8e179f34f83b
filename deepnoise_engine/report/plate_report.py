"""Per-plate result CSVs: ``{out}/{experiment}_Plate{p}.csv``, one row per used well.

The column order is fixed (``COLUMNS``, documented in docs/reports.md). Labels are kept
as the strings written in the data; ``read_plate_report`` restores the dtypes (the app
reads these files directly, so this module stays torch-free).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from deepnoise_engine.report.io import ReportError, atomic_write, check_free

TOP_K = 5

COLUMNS: list[str] = [
    "id_code", "experiment", "plate", "well", "row", "column", "cell_type", "well_type",
    "sites_used", "sirna_true", "sirna_raw", "prob_raw", "sirna", "confidence", "margin",
    "changed_by_balancing", "correct_raw", "correct", "plate_group",
    *[f"top{i}_{kind}" for i in range(1, TOP_K + 1) for kind in ("sirna", "prob")],
]  # fmt: skip

_STRING = ["id_code", "experiment", "well", "row", "cell_type", "well_type",
           "sirna_true", "sirna_raw", "sirna", *[f"top{i}_sirna" for i in range(1, TOP_K + 1)]]
_INT = ["plate", "column", "sites_used", "plate_group"]
_FLOAT = ["prob_raw", "confidence", "margin", *[f"top{i}_prob" for i in range(1, TOP_K + 1)]]
_BOOL = ["changed_by_balancing", "correct_raw", "correct"]

#: pandas dtypes of every column (nullable: a problem well has no call).
DTYPES: dict[str, str] = {
    **dict.fromkeys(_STRING, "string"),
    **dict.fromkeys(_INT, "Int64"),
    **dict.fromkeys(_FLOAT, "float64"),
    **dict.fromkeys(_BOOL, "boolean"),
}

# the per-plate name ``{experiment}_Plate{plate}.csv``: written, matched and listed here only
_NAME_RE = re.compile(r"^(?P<experiment>.+)_Plate(?P<plate>\d+)\.csv$")
REPORT_GLOB = "*_Plate*.csv"


def plate_report_name(experiment: str, plate: int, suffix: str = ".csv") -> str:
    """``HEPG2-01``, 1 -> ``HEPG2-01_Plate1.csv`` (the plate map figure: ``suffix=".png"``).

    The one place the per-plate file name is written; ``parse_plate_report_name`` and
    ``list_plate_reports`` read it back.
    """
    return f"{experiment}_Plate{int(plate)}{suffix}"


def parse_plate_report_name(name: str) -> tuple[str, int] | None:
    """``HEPG2-01_Plate1.csv`` -> ("HEPG2-01", 1); None for other names."""
    match = _NAME_RE.match(Path(name).name)
    return (match["experiment"], int(match["plate"])) if match else None


def list_plate_reports(folder: Path) -> dict[tuple[str, int], Path]:
    """(experiment, plate) -> per-plate CSV in ``folder``, sorted by experiment and plate."""
    found = {}
    for path in sorted(Path(folder).glob(REPORT_GLOB)):
        key = parse_plate_report_name(path.name)
        if key is not None:
            found[key] = path
    return dict(sorted(found.items()))


def to_report_frame(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Rows (dicts keyed by column name; missing keys -> empty) -> a frame with the
    documented column order and dtypes."""
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    unknown = [c for c in frame.columns if c not in DTYPES]
    if unknown:
        raise ValueError(f"unknown plate report columns: {', '.join(unknown)}")
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame = frame[COLUMNS].copy()
    for column, dtype in DTYPES.items():
        values = frame[column].astype(object)
        values = values.where(values.notna(), None)  # NaN/NA/None -> None for every dtype
        if dtype == "string":
            values = values.map(lambda v: None if v is None else str(v))
        frame[column] = values.astype(dtype)
    return frame.reset_index(drop=True)


def write_plate_report(frame: pd.DataFrame, path: Path, *, overwrite: bool = False) -> Path:
    """Write one plate's report atomically (UTF-8, no index); refuses to replace an
    existing file unless ``overwrite``."""
    path = Path(path)
    check_free([path], overwrite)
    frame = to_report_frame(frame)
    return atomic_write(
        path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8", float_format="%.6g")
    )


def read_plate_report(path: Path) -> pd.DataFrame:
    """Read a per-plate CSV back with the documented dtypes (see ``DTYPES``).

    Raises ``ReportError`` naming the file for a missing file, missing columns or a value
    that does not parse (naming the row, 1-based with the header as row 1).
    """
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: plate report not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ReportError(f"{path}: cannot read plate report ({exc})") from exc
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    out = pd.DataFrame(index=raw.index)
    for column in COLUMNS:
        values = raw[column]
        kind = DTYPES[column]
        try:
            if kind == "string":
                out[column] = values.where(values != "", pd.NA).astype("string")
            elif kind == "boolean":
                out[column] = values.map(_parse_bool).astype("boolean")
            elif kind == "Int64":
                out[column] = pd.to_numeric(values.where(values != "", None)).astype("Int64")
            else:
                out[column] = pd.to_numeric(values.where(values != "", None)).astype("float64")
        except (ValueError, TypeError) as exc:
            row = _first_bad_row(values, kind)
            raise ReportError(
                f"{path}, row {row}: bad value in column {column!r} ({exc})"
            ) from exc
    return out


def _parse_bool(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("", "nan", "<na>"):
        return None
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _first_bad_row(values: pd.Series, kind: str) -> int | None:
    for i, value in enumerate(values):
        try:
            if kind == "boolean":
                _parse_bool(value)
            elif value != "":
                float(value) if kind == "float64" else int(value)
        except ValueError:
            return i + 2
    return None
