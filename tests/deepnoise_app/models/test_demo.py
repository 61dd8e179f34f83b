"""The first-start demo's rules (Qt-free)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from deepnoise_app.models.demo import auto_demo_enabled, is_builtin_demo
from deepnoise_engine.screen.synthetic import DEMO_DIRNAME


def test_only_the_builtin_demo_screen_is_the_demo(tmp_path: Path) -> None:
    assert is_builtin_demo(SimpleNamespace(root=tmp_path / DEMO_DIRNAME), tmp_path)
    assert not is_builtin_demo(SimpleNamespace(root=tmp_path / "other"), tmp_path)
    assert not is_builtin_demo(None, tmp_path)


def test_the_demo_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPNOISE_NO_AUTO_DEMO", "1")
    assert not auto_demo_enabled()
    monkeypatch.delenv("DEEPNOISE_NO_AUTO_DEMO")
    assert auto_demo_enabled()
