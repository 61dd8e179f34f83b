"""User settings (Qt-free): recent screens, written atomically."""

from __future__ import annotations

from pathlib import Path

from deepnoise_app.models.settings import MAX_RECENT, Settings


def test_settings_recent_screens_atomic(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "settings.json"
    settings = Settings(path)
    for i in range(MAX_RECENT + 3):
        settings.add_recent_screen(tmp_path / f"screen{i}")
    settings.add_recent_screen(tmp_path / "screen5")  # moves to the front, no duplicate
    recent = Settings(path).recent_screens
    assert len(recent) == MAX_RECENT
    assert recent[0] == str((tmp_path / "screen5").resolve())
    assert len(set(recent)) == len(recent)
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp files left
    # a damaged file is kept aside and defaults are used
    path.write_text("{not json")
    assert Settings(path).recent_screens == []
    assert (path.parent / "settings.json.bad").read_text() == "{not json"
