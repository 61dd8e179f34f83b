"""Atomic file writes: a temp file beside the target, flushed, then ``os.replace``.

A crash or a kill mid-write leaves the old file (or none), never half a file; the temp
file's name holds the writer's process id, so ``remove_stale_temps`` can clear what a
killed writer left. Torch-free and Qt-free, so every step and the app share it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

#: ``.<name>.tmp-<pid>-<random>[.npy|.json]``: what atomic_write (and the pack step's
#: memory-mapped arrays, see temp_token) leave while writing
TEMP_NAME = re.compile(r"^\..*\.tmp-(\d+)-[0-9a-z_]+(\.npy|\.json)?$")


def temp_token() -> str:
    """``tmp-<pid>-<random>``: for temp files written by other means than atomic_write."""
    return f"tmp-{os.getpid()}-{os.urandom(4).hex()}"


def atomic_write(path: Path, write: Callable[[Path], None], size: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then move it into place.

    A full disk raises ``DiskFullError`` naming ``path`` and ``size`` (the bytes to write,
    when known) and leaves no temp file.
    """
    from deepnoise_engine.disk_space import as_disk_full
    from deepnoise_engine.faults import fault_point

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-",
                                    dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fault_point("write", path)
        write(tmp)
        with open(tmp, "rb+") as handle:  # on disk before the rename makes it visible
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        error = as_disk_full(exc, path, size)
        if error is exc:
            raise
        raise error from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"),
                        len(text.encode("utf-8")))


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write bytes atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), len(data))


def remove_stale_temps(folder: Path) -> None:
    """Remove the temp files in ``folder`` whose writer process is gone (this process's own
    are kept: another thread may be writing them)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = TEMP_NAME.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            entry.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True
