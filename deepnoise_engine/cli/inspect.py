"""``deepnoise-engine inspect DATASET [--json] [--verify]``."""

from __future__ import annotations

import argparse
import gc
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise a screen folder and list its problems",
        description="Summarise a screen folder (experiments, plates, sites, channels, classes) "
        "and list the problems found. Exit 0 when the screen opens, 2 when it cannot.",
    )
    parser.add_argument("dataset", metavar="DATASET", help="screen folder (see docs/screens.md)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--verify", action="store_true", help="decode every image and report bad ones (slow)"
    )
    parser.add_argument("--strict", action="store_true", help="fail on the first problem")
    parser.add_argument(
        "--plate-format",
        type=int,
        choices=(96, 384, 1536),
        default=None,
        help="force the plate format instead of the smallest one holding the wells",
    )
    parser.add_argument(
        "--max-plate", type=int, default=None, help="plate numbers above this are out of range"
    )
    parser.add_argument(
        "--max-problems",
        type=int,
        default=None,
        help="problems to list (default 20 in text, all with --json)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepnoise_engine.contract import Reporter
    from deepnoise_engine.screen.errors import ScreenError
    from deepnoise_engine.screen.inspect import format_summary, summarize_screen
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.verify import verify_images
    from deepnoise_engine.terminal import TerminalProgress

    try:
        screen = open_screen(
            args.dataset,
            strict=args.strict,
            plate_format=args.plate_format,
            max_plate=args.max_plate,
        )
        # The screen's objects live until exit: keep the collector from re-walking them
        # on every later allocation burst (imports, the summary).
        gc.freeze()
        if args.verify:
            with TerminalProgress(unit="site") as bars:
                verify_images(screen, Reporter(bars), strict=args.strict)
        else:
            _add_pack_problems(screen)
    except ScreenError as exc:
        print(f"deepnoise-engine inspect: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # e.g. a plate format the wells do not fit
        print(f"deepnoise-engine inspect: error: {exc}", file=sys.stderr)
        return 2
    limit = args.max_problems if args.max_problems is not None else (None if args.json else 20)
    summary = summarize_screen(screen, max_problems=limit)
    summary["verified"] = bool(args.verify)
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_summary(summary))
    return 0


def _add_pack_problems(screen: object) -> None:
    """The read problems an earlier ``pack`` found (recorded in its cache) join the list."""
    import contextlib

    from deepnoise_engine.screen.pack_location import default_cache_dir

    # No cache folder, nothing recorded: skip fingerprinting every plate (seconds on
    # screens of a thousand plates). No usable cache: the metadata problems are what
    # there is.
    if not (default_cache_dir(screen.root, create=False) / "plates").is_dir():
        return
    from deepnoise_engine.screen.pack_cache import PackCache

    with contextlib.suppress(OSError, ValueError, KeyError):
        PackCache.open(screen, build=False)

