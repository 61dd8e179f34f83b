"""``deepnoise-engine serve``: the engine process the app talks to (docs/protocol.md)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the app: JSON lines on stdin/stdout (see docs/protocol.md)",
        description=(
            "Run the engine process: read one JSON request per line on stdin, write one "
            "JSON event per line on stdout; logs go to stderr. Exits on 'shutdown' or "
            "when stdin closes."
        ),
    )
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from deepnoise_engine.serve.server import run_stdio

    return run_stdio()
