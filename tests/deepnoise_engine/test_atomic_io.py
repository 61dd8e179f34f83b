"""Atomic writes: whole file or the old one; temps of dead writers are cleared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepnoise_engine.atomic_io import (
    TEMP_NAME,
    atomic_write,
    atomic_write_text,
    remove_stale_temps,
)


def test_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_a_failing_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    seen: list[str] = []

    def half(tmp: Path) -> None:
        seen.append(tmp.name)
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, half)
    assert target.read_text() == "old"
    assert TEMP_NAME.match(seen[0])  # named so that remove_stale_temps knows it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_stale_temps_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".a.json.tmp-{dead}-x1_y2z3k"
    ours = tmp_path / f".b.json.tmp-{os.getpid()}-abcd1234"
    other = tmp_path / "c.json"
    for path in (stale, ours, other):
        path.write_text("x")
    remove_stale_temps(tmp_path)
    assert not stale.exists() and ours.exists() and other.exists()
