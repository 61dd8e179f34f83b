"""``deepnoise-engine``: the engine's command line.

Each step registers its own sub-commands (``register(subparsers)`` in its ``cli``
module), so this file only lists the steps in the order the data flows through them.
Heavy imports (torch) happen inside the commands, never at start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from deepnoise_engine import __version__

#: Modules that provide ``register(subparsers)``; each sub-command sets ``func``.
COMMAND_MODULES = [
    "deepnoise_engine.screen.cli",  # inspect, pack, make-demo, convert
    "deepnoise_engine.train.cli",  # train
    "deepnoise_engine.score.cli",  # score
    "deepnoise_engine.qc.cli",  # qc
    "deepnoise_engine.serve.cli",  # serve
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepnoise-engine",
        description="DeepNoise engine: inspect and pack screens, train, score, serve the app.",
    )
    parser.add_argument("--version", action="version", version=f"deepnoise-engine {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # step not built yet
                continue
            raise
        module.register(subparsers)
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


if __name__ == "__main__":
    sys.exit(main())
