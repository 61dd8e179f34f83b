"""The layering contracts of ``.importlinter`` hold: the engine imports no GUI library,
the app no torch, and no engine layer imports a higher one (docs/architecture.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    """``lint-imports`` of the Python running the tests (the project's environment)."""
    here = Path(sys.executable).parent / "lint-imports"
    found = str(here) if here.is_file() else shutil.which("lint-imports")
    assert found, "lint-imports not found: install import-linter (a dev dependency)"
    return found


def test_import_contracts_are_kept() -> None:
    # this checkout's packages, whatever else the environment has installed
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run([_lint_imports(), "--no-cache", "--config", ".importlinter"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 0, result.stdout + result.stderr
