"""``deepnoise_app.models`` is the app's Qt-free half: it imports without Qt or napari."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

IMPORT_ALL_WITHOUT_QT = """
import importlib, pkgutil, sys

for gui in ("qtpy", "napari", "PySide6", "PyQt5", "PyQt6", "vispy", "superqt", "pyqtgraph",
            "magicgui"):
    sys.modules[gui] = None  # importing it raises ImportError
import deepnoise_app.models as models
for info in pkgutil.iter_modules(models.__path__):
    importlib.import_module(f"deepnoise_app.models.{info.name}")
"""


def test_every_model_module_imports_without_qt_or_napari() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL_WITHOUT_QT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
