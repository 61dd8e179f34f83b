"""Training run folders as the app reads them (Qt-free): curves, resumable, finished; ETAs.

The folder's layout is the engine's (docs/architecture.md, "Run folder"): ``config.toml``,
``metrics.jsonl``, ``checkpoints/last.*``, ``models/*.json``, ``run.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepnoise_engine.contract.run_folder import METRICS_JSONL
from deepnoise_engine.contract.run_folder import is_finished as run_complete
from deepnoise_engine.contract.run_folder import is_resumable as _is_resumable

__all__ = ["format_eta", "is_resumable", "read_metrics", "run_complete"]


def format_eta(seconds: float | None) -> str:
    """12 -> '12 s', 125 -> '2 min 5 s', 7300 -> '2 h 1 min'; None -> ''."""
    if seconds is None or seconds < 0:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def is_resumable(run_dir: str | Path) -> bool:
    """A run folder holding a resumable checkpoint (``checkpoints/last.*``) and its config."""
    return _is_resumable(Path(run_dir))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (bad lines skipped: the file may be mid-write)."""
    path = Path(run_dir) / METRICS_JSONL
    records: list[dict[str, Any]] = []
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
