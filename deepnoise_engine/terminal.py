"""Progress on a terminal: the events of a ``contract.Reporter`` as tqdm bars on stderr.

``TerminalProgress`` is an ``EventSink``: ``{"event": "progress", "stage", "done", "total",
"eta_s"}`` moves the stage's bar (a new stage closes the previous bar), ``{"event": "log"}``
prints the message above the bars. Without a terminal (a log file, CI) it prints no bars;
``lines_every_s`` then prints a plain progress line per stage at most that often.
"""

from __future__ import annotations

import shutil
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

_PLAIN_WIDTH = 30


class TerminalProgress:
    """Turns progress and log events into tqdm bars (on a terminal) or plain lines."""

    def __init__(self, stream: TextIO | None = None, *, bars: bool | None = None,
                 lines_every_s: float | None = None, unit: str = "it") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.bars = self.stream.isatty() if bars is None else bars
        self.lines_every_s = lines_every_s
        self.unit = unit
        self._bar: tqdm | None = None
        self._stage: str | None = None
        self._last_line: dict[str, float] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "log":
            self.write(str(event.get("message", "")))
        elif kind == "progress":
            stage = str(event.get("stage", ""))
            done, total = event.get("done", 0) or 0, event.get("total")
            if self.bars:
                self._move_bar(stage, done, total)
            elif self.lines_every_s is not None:
                self._plain_line(stage, done, total, event.get("eta_s"))

    def write(self, message: str) -> None:
        """Print a line above the bars (tqdm redraws them below it)."""
        if self._bar is not None:
            tqdm.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def _move_bar(self, stage: str, done: float, total: float | None) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage = stage
            # the size at the bar's start; a terminal that reports none (a bare pty) gets
            # 80 x 24 (tqdm would hide its bar there)
            size = shutil.get_terminal_size()
            self._bar = tqdm(total=total, desc=stage, unit=self.unit, file=self.stream,
                             ncols=size.columns, nrows=size.lines, leave=True)
        bar = self._bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def _plain_line(self, stage: str, done: float, total: float | None,
                    eta_s: float | None) -> None:
        """At most one line per ``lines_every_s`` per stage, and the stage's last one."""
        finished = total is not None and done >= total
        now = time.monotonic()
        last = self._last_line.get(stage)
        if not finished and last is not None and now - last < (self.lines_every_s or 0.0):
            return
        self._last_line[stage] = now
        whole = max(total or 1, 1)
        frac = min(done / whole, 1.0)
        eta = "--" if eta_s is None else format_seconds(eta_s)
        bar = "#" * int(frac * _PLAIN_WIDTH)
        print(f"[{bar:<{_PLAIN_WIDTH}}] {frac:6.1%} {stage} step {done}/{total} ETA {eta}",
              file=self.stream, flush=True)

    def close(self) -> None:
        """End the current bar (its last state stays on the screen)."""
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def format_seconds(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3700`` -> ``1h01m``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
