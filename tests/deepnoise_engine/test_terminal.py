"""Terminal progress: a Reporter's events as tqdm bars, or plain lines without a terminal."""

from __future__ import annotations

import io

from deepnoise_engine.contract import Reporter
from deepnoise_engine.terminal import TerminalProgress, format_seconds


def test_bars_per_stage_with_logs_above() -> None:
    stream = io.StringIO()
    with TerminalProgress(stream, bars=True, unit="site") as bars:
        report = Reporter(bars)
        report.progress("pack", 3, 10)
        report.log("hello")
        report.progress("pack", 10, 10)
        report.progress("verify", 1, 2)
    text = stream.getvalue()
    assert "hello\n" in text
    assert "pack: 100%" in text and "10/10" in text and "site" in text
    assert "verify:  50%" in text and text.endswith("\n")


def test_without_a_terminal_only_logs_and_throttled_lines() -> None:
    quiet = io.StringIO()
    sink = TerminalProgress(quiet)  # a StringIO is no terminal: no bars
    sink({"event": "progress", "stage": "pack", "done": 1, "total": 4})
    sink({"event": "log", "message": "a log line"})
    assert quiet.getvalue() == "a log line\n"
    lines = io.StringIO()
    sink = TerminalProgress(lines, lines_every_s=3600)
    for done in range(1, 6):
        sink({"event": "progress", "stage": "train", "done": done, "total": 5, "eta_s": 75})
    out = lines.getvalue().splitlines()
    assert len(out) == 2  # the first line, then the stage's last one
    assert "step 5/5" in out[-1] and "100.0%" in out[-1] and out[0].endswith("ETA 1m15s")


def test_format_seconds() -> None:
    assert format_seconds(0) == "0m00s" and format_seconds(3700) == "1h01m"
