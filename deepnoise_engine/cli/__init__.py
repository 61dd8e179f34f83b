"""``deepnoise-engine``: the engine's command line.

One module per sub-command (``register(subparsers)``), listed in the order the data flows
through the steps; the top layer of the engine (it may import every step).
Heavy imports (torch) happen inside the commands, never at start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from deepnoise_engine import __version__

#: Modules that provide ``register(subparsers)``; each sub-command sets ``func``.
COMMAND_MODULES = [
    "deepnoise_engine.cli.inspect",
    "deepnoise_engine.cli.pack",
    "deepnoise_engine.cli.make_demo",
    "deepnoise_engine.cli.convert",
    "deepnoise_engine.cli.train",
    "deepnoise_engine.cli.score",
    "deepnoise_engine.cli.qc",
    "deepnoise_engine.cli.serve",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepnoise-engine",
        description="DeepNoise engine: inspect and pack screens, train, score, serve the app.",
    )
    parser.add_argument("--version", action="version", version=f"deepnoise-engine {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        from deepnoise_engine.disk_space import DiskFullError, is_disk_full

        if not is_disk_full(exc):
            raise
        if not isinstance(exc, DiskFullError):
            exc = DiskFullError(exc.filename or "the output folder", None)
        # any step: one line naming the file and the space needed, never a traceback
        print(f"deepnoise-engine {args.command}: error: {exc}", file=sys.stderr)
        return 2
