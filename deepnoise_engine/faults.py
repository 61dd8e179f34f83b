"""Fault injection for the robustness tests and benchmarks/bench_faults.py.

``DEEPNOISE_FAULT=kill:NAME`` makes the process SIGKILL itself when it reaches the named
point; ``DEEPNOISE_FAULT=enospc:NAME`` raises ``OSError(ENOSPC)`` there, as a full disk
would. Unset (always, outside tests), ``fault_point`` costs one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal


def fault_point(name: str, path: str | os.PathLike | None = None) -> None:
    """A place where a test may kill the process or make the disk full."""
    wanted = os.environ.get("DEEPNOISE_FAULT")
    if not wanted or not wanted.endswith(f":{name}"):
        return
    action = wanted.split(":", 1)[0]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path or name))
