"""Training run folders (Qt-free): metrics, resumable and finished runs, ETAs."""

from __future__ import annotations

from pathlib import Path

from deepnoise_app.models.training_runs import (
    format_eta,
    is_resumable,
    read_metrics,
    run_complete,
)


def test_format_eta() -> None:
    assert format_eta(None) == "" and format_eta(-1) == "" and format_eta(12) == "12 s"
    assert format_eta(125) == "2 min 5 s" and format_eta(7300) == "2 h 1 min"


def test_metrics_skip_a_line_being_written(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n[1, 2]\n{"epoch": 2}\n{"epo')
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]


def test_resumable_and_finished_runs(tmp_path: Path) -> None:
    assert not is_resumable(tmp_path) and not run_complete(tmp_path)
    (tmp_path / "config.toml").write_text("")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.json").write_text("{}")
    assert is_resumable(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "models").mkdir()
    assert not run_complete(tmp_path)  # no model saved yet
    (tmp_path / "models" / "HEPG2.json").write_text("{}")
    assert run_complete(tmp_path)
