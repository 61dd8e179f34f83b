"""Fixtures of the engine tests: ``tmpfs``, a real small file system for full-disk cases."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def _mounted(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the injected-ENOSPC tests cover it")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def tmpfs() -> Callable[[Path, str], contextlib.AbstractContextManager[Path]]:
    """``with tmpfs(folder, "20m") as disk:`` mounts a tmpfs of that size at ``folder``
    (the test is skipped where mounting is refused) and unmounts it afterwards."""
    return _mounted
