"""A scoring run's output set: checked before any work, written as one set at the end
(see ``deepnoise_engine.report.output_set``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepnoise_engine.report.export import SUBMISSION_NAME
from deepnoise_engine.report.output_set import check_outputs, same_file, write_set
from deepnoise_engine.report.plate_report import plate_report_name, to_report_frame
from deepnoise_engine.report.submission import submission_frame
from deepnoise_engine.report.summary import SUMMARY_JSON, SUMMARY_MD, render_summary_md

PlateKey = tuple[str, int]


def set_names(plates: Sequence[PlateKey], extra: Sequence[str] = ()) -> list[str]:
    """The files of a score folder for ``plates`` (the manifest comes on top); ``extra``:
    further files of the set (the well profiles)."""
    return [*(plate_report_name(e, p) for e, p in plates), SUBMISSION_NAME, SUMMARY_JSON,
            SUMMARY_MD, *extra]


def check_score_outputs(out: Path, plates: Sequence[PlateKey], submission: Path | None,
                        overwrite: bool, extra: Sequence[str] = ()) -> Path | None:
    """Check every output path and clash before any work; returns the submission copy to
    write (None when there is none, or when it is the set's own ``submission.csv``)."""
    copy = Path(submission) if submission is not None else None
    if copy is not None and same_file(copy, Path(out) / SUBMISSION_NAME):
        copy = None  # the run writes that file anyway: not a clash
    check_outputs(Path(out), set_names(plates, extra), [copy] if copy else [], overwrite)
    return copy


def _csv(frame: pd.DataFrame, **kwargs: Any) -> bytes:
    return frame.to_csv(index=False, **kwargs).encode("utf-8")


def write_score_set(out: Path, frames: dict[PlateKey, pd.DataFrame], combined: pd.DataFrame,
                    summary: dict[str, Any], copy: Path | None,
                    extra: dict[str, bytes] | None = None) -> list[Path]:
    """Render every report in memory and write them, with ``extra`` (name -> content: the
    well profiles), as one set; returns the paths."""
    files = {plate_report_name(e, p): _csv(to_report_frame(f), float_format="%.6g")
             for (e, p), f in frames.items()}
    files[SUBMISSION_NAME] = _csv(submission_frame(combined))
    files[SUMMARY_JSON] = (json.dumps(summary, indent=2) + "\n").encode("utf-8")
    files[SUMMARY_MD] = render_summary_md(summary).encode("utf-8")
    files.update(extra or {})
    copies = {copy: SUBMISSION_NAME} if copy is not None else {}
    return write_set(Path(out), files, copies, {"plates": len(frames)})
