"""check_bundle.py's screenshot test tells a shown plate map from a blank or plate-less one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from deepnoise_app.models import colours

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def check_bundle() -> ModuleType:
    path = ROOT / "packaging" / "check_bundle.py"
    spec = importlib.util.spec_from_file_location("check_bundle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_bundle"] = module
    spec.loader.exec_module(module)
    return module


def _window(seed: int = 0) -> np.ndarray:
    """A 400x600 RGB 'window': dark background with noisy grey panels (no plate colours)."""
    rng = np.random.default_rng(seed)
    image = np.full((400, 600, 3), 38, np.uint8)
    image[50:350, 20:280] = rng.integers(0, 60, (300, 260, 3), dtype=np.uint8)
    return image


def _save(image: np.ndarray, path: Path) -> Path:
    Image.fromarray(image).save(path)
    return path


def test_plate_map_passes(check_bundle: ModuleType, tmp_path: Path) -> None:
    image = _window()
    for i, name in enumerate(["treatment", "positive_control", "negative_control"]):
        for j in range(8):  # eight 8x8 wells per type
            y, x = 60 + 12 * j, 320 + 12 * i
            image[y : y + 8, x : x + 8] = colours.WELL_TYPE_RGB[name]
    detail = check_bundle.check_screenshot(_save(image, tmp_path / "plate.png"), min_pixels=300)
    assert detail["plate_pixels"]["treatment"] >= 8 * 64
    assert detail["plate_pixels"]["negative_control"] >= 8 * 64
    assert detail["size"] == [600, 400]


def test_blank_fails(check_bundle: ModuleType, tmp_path: Path) -> None:
    blank = np.zeros((400, 600, 3), np.uint8)
    with pytest.raises(check_bundle.CheckFailed, match="blank"):
        check_bundle.check_screenshot(_save(blank, tmp_path / "blank.png"))


def test_window_without_plate_fails(check_bundle: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(check_bundle.CheckFailed, match="no plate map"):
        check_bundle.check_screenshot(_save(_window(), tmp_path / "empty.png"))


def test_missing_screenshot_fails(check_bundle: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(check_bundle.CheckFailed, match="no screenshot"):
        check_bundle.check_screenshot(tmp_path / "none.png")
