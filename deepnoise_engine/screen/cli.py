"""Sub-commands of the screen step: ``inspect``, ``pack``, ``make-demo``, ``convert``."""

from __future__ import annotations

import argparse
import importlib

_MODULES = [
    "deepnoise_engine.screen.inspect_cli",
    "deepnoise_engine.screen.pack_cli",
    "deepnoise_engine.screen.demo_cli",
    "deepnoise_engine.screen.convert_cli",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
