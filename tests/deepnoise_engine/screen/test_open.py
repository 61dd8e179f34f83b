"""open_screen: layout detection and screens that cannot be opened at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from deepnoise_engine.screen import MetadataError, ScreenNotFoundError, open_screen
from deepnoise_engine.screen.open import detect_layout


def _rxrx1(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "train.csv").write_text("id_code,experiment,plate,well,sirna\nA-1_1_B02,A-1,1,B02,3\n")
    folder = root / "train" / "A-1" / "Plate1"
    folder.mkdir(parents=True)
    for c in (1, 2):
        Image.fromarray(np.full((4, 4), c, np.uint8)).save(folder / f"B02_s1_w{c}.png")
    return root


def _tiff(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "screen.csv").write_text("experiment,plate,well,sirna\nA-1,1,B02,3\n")
    folder = root / "train" / "A-1" / "Plate1"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "B02_s1.tif", np.zeros((3, 6, 5), np.uint8))
    return root


def test_detects_layouts(tmp_path: Path) -> None:
    rxrx1, tiff = _rxrx1(tmp_path / "r"), _tiff(tmp_path / "t")
    assert detect_layout(rxrx1) == "rxrx1" and detect_layout(tiff) == "tiff"
    a = open_screen(rxrx1)
    assert (a.layout, a.channels, a.image_size, a.problems) == ("rxrx1", [1, 2], (4, 4), [])
    b = open_screen(str(tiff))
    assert (b.layout, b.channels, b.image_size, b.problems) == ("tiff", [1, 2, 3], (6, 5), [])
    # a CSV inside the folder opens the folder
    assert open_screen(rxrx1 / "train.csv").root == rxrx1.resolve()
    assert open_screen(rxrx1).name == "r"


def test_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(ScreenNotFoundError, match="no such screen folder") as info:
        open_screen(tmp_path / "absent")
    assert info.value.file == str(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetadataError, match=r"no screen metadata.*train\.csv.*screen\.csv"):
        open_screen(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ScreenNotFoundError, match="not a screen folder"):
        open_screen(tmp_path / "notes.txt")
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "train.csv").write_text("")
    with pytest.raises(MetadataError, match="CSV is empty"):
        open_screen(tmp_path / "blank")
    with pytest.raises(ValueError, match="unknown plate format"):
        open_screen(_rxrx1(tmp_path / "r"), plate_format=100)


def test_screen_package_import_is_torch_and_qt_free() -> None:
    code = (
        "import sys, deepnoise_engine.screen as s; "
        "s.open_screen; "
        "bad = [m for m in ('torch', 'timm', 'napari', 'qtpy', 'PySide6', 'pandas') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
