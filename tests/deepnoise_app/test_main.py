"""``deepnoise`` started as a real process under the test X server (pytest-xvfb)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _env(user: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DEEPNOISE_CONFIG_DIR": str(user / "config"),
        "DEEPNOISE_CACHE_DIR": str(user / "cache"),
        "DEEPNOISE_DATA_DIR": str(user / "data"),
        "DEEPNOISE_NO_ENGINE_AUTOSTART": "1",
        "DEEPNOISE_NO_AUTO_DEMO": "1",
        "OMP_NUM_THREADS": "1",
    })
    return env


def test_app_shows_a_plate(small_screen_path: Path, small_screen, tmp_path: Path) -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("no X display (pytest-xvfb provides one)")
    plate = list(small_screen.plates())[1]
    shot = tmp_path / "app.png"
    result = subprocess.run(
        [sys.executable, "-m", "deepnoise_app.main", str(small_screen_path),
         "--plate", f"{plate.experiment}:{plate.index}", "--screenshot", str(shot),
         "--quit-after"],
        env=_env(tmp_path / "user"), capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 600
    # not blank: many distinct colours, and the well's channel colours reach the canvas
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500
    red_or_blue = (pixels[..., 0] > 120) & (pixels[..., 1] < 100) | (pixels[..., 2] > 150) & (
        pixels[..., 0] < 100)
    assert red_or_blue.sum() > 500
    # the screen was remembered in the recent list of the (isolated) settings file
    settings = json.loads((tmp_path / "user" / "config" / "settings.json").read_text())
    assert settings["recent_screens"][0] == str(small_screen_path.resolve())


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deepnoise_app.main", str(tmp_path / "nope")],
        env=_env(tmp_path / "user"), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "no such screen folder" in result.stderr and "nope" in result.stderr
