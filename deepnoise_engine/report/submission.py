"""The challenge submission CSV: ``id_code,sirna`` for treatment wells only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepnoise_engine.report.io import ReportError, atomic_write, check_free


def submission_frame(report: pd.DataFrame) -> pd.DataFrame:
    """Treatment wells with a call -> ``id_code, sirna`` (labels as written: integers stay
    plain integers such as ``513``, never ``513.0``)."""
    treat = report[(report["well_type"] == "treatment") & report["sirna"].notna()]
    frame = pd.DataFrame({
        "id_code": treat["id_code"].astype(str).to_numpy(),
        "sirna": treat["sirna"].astype(str).to_numpy(),
    })
    if len(frame) and frame["sirna"].str.fullmatch(r"-?\d+").all():
        frame["sirna"] = frame["sirna"].astype("int64")
    return frame


def write_submission(report: pd.DataFrame, path: Path, *, overwrite: bool = False) -> Path:
    """Write the submission for the treatment wells in ``report`` (one or many plates)."""
    path = Path(path)
    check_free([path], overwrite)
    frame = submission_frame(report)
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8"))


def read_submission(path: Path) -> pd.DataFrame:
    """Read a submission CSV (labels kept as strings); checks the two columns."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReportError(f"{path}: cannot read submission ({exc})") from exc
    if list(frame.columns) != ["id_code", "sirna"]:
        raise ReportError(f"{path}: expected columns id_code,sirna, got {','.join(frame.columns)}")
    return frame
