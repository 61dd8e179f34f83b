"""Safe output: atomic writes (temp file in the same folder, then ``os.replace``) and a
check that refuses to replace existing files unless asked to."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


class ReportError(ValueError):
    """A report file is unreadable or malformed; the message names the file (and row)."""


class OutputExistsError(FileExistsError):
    """Outputs already exist and overwrite was not asked for; ``paths`` lists them."""

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p) for p in paths]
        shown = ", ".join(str(p) for p in self.paths[:5])
        more = f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else ""
        super().__init__(
            f"output already exists: {shown}{more} (use --overwrite / overwrite=True to replace)"
        )


def check_free(paths: Iterable[Path], overwrite: bool) -> None:
    """Raise ``OutputExistsError`` naming every path that exists, unless ``overwrite``."""
    if overwrite:
        return
    taken = [Path(p) for p in paths if Path(p).exists()]
    if taken:
        raise OutputExistsError(taken)


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
