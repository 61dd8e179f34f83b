"""Safe output: atomic writes (temp file in the same folder, then ``os.replace``) and a
check that refuses to replace existing files unless asked to."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from deepnoise_engine.atomic_io import atomic_write, atomic_write_bytes, atomic_write_text

__all__ = [
    "OutputExistsError",
    "ReportError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_free",
]


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


