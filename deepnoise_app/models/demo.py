"""The first-start demo's rules (Qt-free): is this the built-in demo screen, is the demo on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deepnoise_engine.screen.synthetic import DEMO_DIRNAME, user_data_dir


def auto_demo_enabled() -> bool:
    """False when ``DEEPNOISE_NO_AUTO_DEMO`` is set (tests, scripted use)."""
    return os.environ.get("DEEPNOISE_NO_AUTO_DEMO", "").strip() not in ("1", "true", "yes")


def is_builtin_demo(screen: Any, data_dir: Path | None = None) -> bool:
    """True when ``screen`` is the built-in demo screen of the user's data dir."""
    if screen is None:
        return False
    root = Path(screen.root)
    demo = (data_dir or user_data_dir()) / DEMO_DIRNAME
    try:
        return root.resolve() == demo.resolve()
    except OSError:
        return False
