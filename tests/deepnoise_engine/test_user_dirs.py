"""user_dir: $DEEPNOISE_<KIND>_DIR, else the XDG base directory, else the XDG default."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnoise_engine.user_dirs import user_dir


@pytest.mark.parametrize("kind, xdg, default", [
    ("config", "XDG_CONFIG_HOME", ".config"),
    ("cache", "XDG_CACHE_HOME", ".cache"),
    ("data", "XDG_DATA_HOME", ".local/share"),
])
def test_explicit_then_xdg_then_home(kind: str, xdg: str, default: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(f"DEEPNOISE_{kind.upper()}_DIR", raising=False)
    monkeypatch.delenv(xdg, raising=False)
    assert user_dir(kind) == tmp_path / "home" / default / "deepnoise"
    monkeypatch.setenv(xdg, str(tmp_path / "xdg"))
    assert user_dir(kind) == tmp_path / "xdg" / "deepnoise"
    monkeypatch.setenv(f"DEEPNOISE_{kind.upper()}_DIR", str(tmp_path / "mine"))
    assert user_dir(kind) == tmp_path / "mine"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'logs'"):
        user_dir("logs")
