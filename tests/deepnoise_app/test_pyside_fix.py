"""The None-refcount guard keeps a long Qt session alive (see deepnoise_app/_pyside_fix.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

LOOP = """
import sys
{prelude}
from PySide6 import QtCore
obj = QtCore.QObject()
for _ in range(300_000):  # far more void calls than None's initial reference count
    obj.setObjectName("x")
print("alive", sys.getrefcount(None) > 0)
"""


def _run(prelude: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOOP.format(prelude=prelude)],
                          capture_output=True, text=True, timeout=120)


def test_void_calls_do_not_kill_the_app() -> None:
    pytest.importorskip("PySide6")
    guarded = _run("import deepnoise_app")
    assert guarded.returncode == 0, guarded.stderr[-2000:]
    assert "alive True" in guarded.stdout
    from deepnoise_app._pyside_fix import pyside_leaks_none

    if sys.version_info < (3, 12) and pyside_leaks_none():
        # the bug is real here: without the guard the same loop aborts
        bare = _run("")
        assert bare.returncode != 0 and "none_dealloc" in bare.stderr
