"""Fault injection for the robustness tests and benchmarks/bench_faults.py.

``DEEPNOISE_FAULT=ACTION:POINT[:GLOB]``: at the named point (and, with GLOB, only for a
file whose name matches it) ``kill`` makes the process SIGKILL itself and ``enospc``
raises ``OSError(ENOSPC)`` as a full disk would. Points: ``write`` (every atomic write),
``reserve`` (the pack's space reservation), ``score-stage`` and ``score-move`` (a score
set being staged and moved into place). Unset (always, outside tests) a point costs one
environment lookup.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
from pathlib import Path


def fault_point(name: str, path: str | os.PathLike | None = None) -> None:
    """A place where a test may kill the process or make the disk full."""
    wanted = os.environ.get("DEEPNOISE_FAULT")
    if not wanted:
        return
    action, _, rest = wanted.partition(":")
    point, _, pattern = rest.partition(":")
    if point != name or (pattern and not fnmatch.fnmatch(Path(path or "").name, pattern)):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path or name))
