"""Where DeepNoise keeps a user's files: settings (config), caches, generated data.

Each kind is ``$DEEPNOISE_<KIND>_DIR`` when set, else ``<XDG base directory>/deepnoise``,
else the XDG default under the home folder. Torch-free and Qt-free: the steps and the app
share it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: kind -> (XDG variable, default below the home folder)
_XDG = {
    "config": ("XDG_CONFIG_HOME", ".config"),
    "cache": ("XDG_CACHE_HOME", ".cache"),
    "data": ("XDG_DATA_HOME", ".local/share"),
}


def user_dir(kind: str) -> Path:
    """The folder for ``kind`` ("config", "cache" or "data"); not created here."""
    if kind not in _XDG:
        raise ValueError(f"unknown user folder kind {kind!r}: expected one of {sorted(_XDG)}")
    explicit = os.environ.get(f"DEEPNOISE_{kind.upper()}_DIR")
    if explicit:
        return Path(explicit).expanduser()
    variable, default = _XDG[kind]
    base = os.environ.get(variable)
    return (Path(base).expanduser() if base else Path.home() / default) / "deepnoise"
