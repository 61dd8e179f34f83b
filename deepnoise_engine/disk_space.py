"""Full disks as a typed error: ``DiskFullError`` names the path and the space needed.

A write that runs out of space raises ``OSError(ENOSPC)``; one through a memory map
raises SIGBUS and kills the process, so memory-mapped files are reserved with
``reserve`` (``posix_fallocate``) before they are written. Torch-free and Qt-free.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from deepnoise_engine.faults import fault_point

#: errno values that mean "no space left" (a full disk or an exhausted quota)
_FULL = {errno.ENOSPC, errno.EDQUOT}


class DiskFullError(OSError):
    """No space left to write ``path``; ``needed`` bytes (at least), ``free`` bytes free."""

    kind = "disk_full"

    def __init__(self, path: str | os.PathLike, needed: int | None, free: int | None = None):
        self.path = str(path)
        self.file = self.path  # the protocol's error events carry ``file``
        self.needed = needed
        self.free = free_bytes(path) if free is None else free
        need = f"needs {format_bytes(needed)}" if needed else "needs more space"
        super().__init__(
            errno.ENOSPC,
            f"{self.path}: disk full ({need}, {format_bytes(self.free)} free): free some "
            "space or choose another output folder, then run the command again",
        )

    def __str__(self) -> str:
        return self.strerror or "disk full"


def is_disk_full(exc: BaseException) -> bool:
    """True for ``DiskFullError`` and any ``OSError`` whose errno means "no space left"."""
    return isinstance(exc, OSError) and (isinstance(exc, DiskFullError) or exc.errno in _FULL)


def format_bytes(n: int | None) -> str:
    if n is None:
        return "? bytes"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def ensure_free(path: str | os.PathLike, needed: int) -> None:
    """Raise ``DiskFullError`` before any work when ``needed`` bytes will not fit at ``path``."""
    free = free_bytes(path)
    if free is not None and needed > free:
        raise DiskFullError(path, needed, free)


def reserve(path: str | os.PathLike, size: int) -> None:
    """Allocate ``size`` bytes of the file ``path`` now, so writes through a memory map of it
    cannot hit a full disk (SIGBUS); raises ``DiskFullError`` when they do not fit."""
    fd = os.open(path, os.O_RDWR)
    try:
        fault_point("reserve", path)
        if size > 0:
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in _FULL:
            raise DiskFullError(path, size) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate on this fs
            raise
    finally:
        os.close(fd)


def as_disk_full(exc: OSError, path: str | os.PathLike, needed: int | None) -> OSError:
    """``exc`` as a ``DiskFullError`` naming ``path`` when it means "no space left"."""
    if isinstance(exc, DiskFullError) or not is_disk_full(exc):
        return exc
    return DiskFullError(path, needed)
