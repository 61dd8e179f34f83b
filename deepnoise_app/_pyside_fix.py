"""Guard against a PySide6 build that drops a reference to ``None`` on every void call.

With the PySide6 6.12.0 wheels of this environment, each call of a Qt method returning void
(``QPainter.drawRect``, ``QLabel.setText``, ``QWidget.update``...) decrements ``None``'s
reference count. On Python < 3.12 ``None`` is not immortal, so after some ten thousand such
calls (a few minutes of painting) the interpreter aborts with "Fatal Python error:
none_dealloc". This module measures the leak once and, when present, gives ``None`` a huge
reference count (what Python 3.12 does for immortal objects), so the app and napari keep
running. Nothing happens on Python >= 3.12, without PySide6, or with a correct PySide6.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_HEADROOM = 1 << 40  # Py_INCREF(None) this many times: more void calls than any session makes
_applied = False


def pyside_leaks_none() -> bool:
    """True when a void PySide6 call lowers ``None``'s reference count (measured, 16 calls)."""
    if importlib.util.find_spec("PySide6") is None:
        return False
    api = os.environ.get("QT_API", "").lower()
    if api and api not in ("pyside6",):
        return False
    from PySide6 import QtCore

    probe = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(16):
        probe.setObjectName("deepnoise-probe")
    return before - sys.getrefcount(None) >= 16


def guard_none_refcount() -> bool:
    """Apply the guard when needed; returns True when it was applied (once per process)."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if not pyside_leaks_none():
        return False
    import ctypes

    # ob_refcnt is the first field of every object in CPython release builds
    refcnt = ctypes.c_ssize_t.from_address(id(None))
    before = sys.getrefcount(None)
    refcnt.value += _HEADROOM
    if sys.getrefcount(None) - before != _HEADROOM:  # not the layout we expect: undo
        refcnt.value -= _HEADROOM
        return False
    _applied = True
    return True
