"""Review decisions on a scoring run's wells: ``{score_dir}/review.csv``.

The app's review queue writes one row per reviewed well (``id_code``, ``decision``:
accepted | rejected | empty, ``note``, ``updated``: ISO time) atomically after every
decision; ``export_reports`` adds them to the per-plate CSVs as ``review_decision`` and
``review_note``. Torch-free and Qt-free.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pandas as pd

from deepnoise_engine.report.io import ReportError, atomic_write

REVIEW_NAME = "review.csv"
REVIEW_COLUMNS = ["id_code", "decision", "note", "updated"]
DECISIONS = ("accepted", "rejected", "")
#: columns export adds to each per-plate CSV
EXPORT_COLUMNS = {"decision": "review_decision", "note": "review_note"}


def review_path(score_dir: Path) -> Path:
    return Path(score_dir) / REVIEW_NAME


def empty_decisions() -> pd.DataFrame:
    return pd.DataFrame(columns=REVIEW_COLUMNS).set_index("id_code")


def read_decisions(score_dir: Path) -> pd.DataFrame:
    """The decisions indexed by ``id_code`` (empty when none were saved). Raises
    ``ReportError`` naming the file and row for a malformed file."""
    path = review_path(score_dir)
    if not path.is_file():
        return empty_decisions()
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ReportError(f"{path}: cannot read review decisions ({exc})") from exc
    missing = [c for c in REVIEW_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    bad = ~frame["decision"].isin(DECISIONS)
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 2
        raise ReportError(f"{path}, row {row}: decision must be accepted, rejected or empty, "
                          f"not {frame['decision'][bad].iloc[0]!r}")
    return frame[REVIEW_COLUMNS].drop_duplicates("id_code", keep="last").set_index("id_code")


def set_decision(score_dir: Path, id_code: str, *, decision: str | None = None,
                 note: str | None = None) -> pd.DataFrame:
    """Record (or change) one well's decision and/or note and save the file atomically;
    returns all decisions. ``None`` keeps the stored value."""
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"decision must be accepted, rejected or empty, not {decision!r}")
    frame = read_decisions(score_dir)
    old = frame.loc[id_code] if id_code in frame.index else None
    frame.loc[id_code, "decision"] = decision if decision is not None else (
        "" if old is None else old["decision"])
    frame.loc[id_code, "note"] = note if note is not None else (
        "" if old is None else old["note"])
    frame.loc[id_code, "updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds")
    write_decisions(score_dir, frame)
    return frame


def write_decisions(score_dir: Path, frame: pd.DataFrame) -> Path:
    out = frame.reset_index()[REVIEW_COLUMNS].sort_values("id_code")
    return atomic_write(review_path(score_dir),
                        lambda tmp: out.to_csv(tmp, index=False, encoding="utf-8"))


def with_decisions(plate_csv: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """A per-plate CSV (read as strings) with ``review_decision`` and ``review_note``."""
    out = plate_csv.copy()
    for column, name in EXPORT_COLUMNS.items():
        out[name] = out["id_code"].map(decisions[column]).fillna("")
    return out
