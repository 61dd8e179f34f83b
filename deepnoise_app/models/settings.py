"""Small user settings (recent screens, last choices) in a JSON file in the user's config dir.

Location: ``$DEEPNOISE_CONFIG_DIR/settings.json``, else ``$XDG_CONFIG_HOME/deepnoise``, else
``~/.config/deepnoise``. Written atomically (temp file in the same folder, then os.replace); a
damaged file is kept aside as ``settings.json.bad`` and defaults are used, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from deepnoise_engine.atomic_io import atomic_write_text
from deepnoise_engine.user_dirs import user_dir

MAX_RECENT = 10


def config_dir() -> Path:
    """The folder holding the app's settings."""
    return user_dir("config")


def cache_dir() -> Path:
    """The user cache folder (thumbnails): ``$DEEPNOISE_CACHE_DIR`` or XDG cache/deepnoise."""
    return user_dir("cache")


class Settings:
    """The settings file: ``recent_screens`` (newest first) and free-form ``values``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "settings.json"
        self.data: dict[str, Any] = {"recent_screens": [], "values": {}}
        self.load()

    def load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError):
            # keep the damaged file for the user, start from defaults
            with contextlib.suppress(OSError):
                os.replace(self.path, self.path.with_name(self.path.name + ".bad"))
            return
        recent = data.get("recent_screens", [])
        values = data.get("values", {})
        self.data = {
            "recent_screens": [str(p) for p in recent if isinstance(p, str)],
            "values": values if isinstance(values, dict) else {},
        }

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2) + "\n")

    @property
    def recent_screens(self) -> list[str]:
        return list(self.data["recent_screens"])

    def add_recent_screen(self, path: str | Path) -> None:
        """Put ``path`` first in the recent list (deduplicated, at most MAX_RECENT) and save."""
        resolved = str(Path(path).expanduser().resolve())
        recent = [p for p in self.data["recent_screens"] if p != resolved]
        self.data["recent_screens"] = [resolved, *recent][:MAX_RECENT]
        self.save()

    def get(self, key: str, default: Any = None) -> Any:
        return self.data["values"].get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data["values"][key] = value
        self.save()
