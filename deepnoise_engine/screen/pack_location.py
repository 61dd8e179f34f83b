"""Where a screen's pack cache lives (no pandas or numpy: ``inspect`` asks it first)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from deepnoise_engine.user_dirs import user_dir


def user_cache_dir() -> Path:
    """$DEEPNOISE_CACHE_DIR, else $XDG_CACHE_HOME/deepnoise, else ~/.cache/deepnoise."""
    return user_dir("cache")


def default_cache_dir(root: str | os.PathLike, *, create: bool = True) -> Path:
    """``<root>/.deepnoise/pack`` when it can be written, else the user cache directory.

    The fallback is ``user_cache_dir() / "pack" / <sha1 of the resolved root>[:16]`` (for
    read-only screens such as ../shared). ``create=False`` only looks (nothing is made).
    """
    root = Path(root).resolve()
    local = root / ".deepnoise" / "pack"
    probe = local
    while not probe.exists() and probe != root:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        if not create:
            return local
        try:
            local.mkdir(parents=True, exist_ok=True)
            return local
        except OSError:
            pass
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:16]
    return user_cache_dir() / "pack" / digest


