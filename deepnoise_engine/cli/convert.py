"""``deepnoise-engine convert SCREEN --to ome-zarr OUT [--predictions SCORES] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

FORMATS = ("ome-zarr",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="write a screen as OME-Zarr HCS plates",
        description="Write every plate of a screen as an NGFF HCS plate (OME-Zarr 0.5) in "
        "OUT, with labels.csv (and predictions.csv). Exit 0 when written, 2 on bad input.",
    )
    parser.add_argument("screen", metavar="SCREEN", help="screen folder (see docs/screens.md)")
    parser.add_argument("--to", dest="to", choices=FORMATS, required=True,
                        help="output format")
    parser.add_argument("out", metavar="OUT", help="new folder for the plates")
    parser.add_argument("--predictions", default=None, metavar="SCORES",
                        help="score output folder (or one report CSV) to carry as "
                        "predictions.csv, one row per well")
    parser.add_argument("--imaged-only", action="store_true",
                        help="leave wells without a usable site out of the plates")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepnoise_engine.contract import Reporter
    from deepnoise_engine.screen.convert import check_out, convert_to_omezarr, read_predictions
    from deepnoise_engine.screen.errors import ScreenError
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.terminal import TerminalProgress

    try:
        check_out(Path(args.out).expanduser().absolute())  # before opening a large screen
        if args.predictions is not None:
            read_predictions(Path(args.predictions))
        screen = open_screen(args.screen)
        with TerminalProgress(unit="site") as bars:
            result = convert_to_omezarr(
                screen, Path(args.out), predictions=args.predictions and Path(args.predictions),
                imaged_only=args.imaged_only, reporter=Reporter(bars),
            )
    except (ScreenError, ValueError) as exc:
        print(f"deepnoise-engine convert: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permissions: nothing was moved into OUT
        print(f"deepnoise-engine convert: error: {exc}; OUT was not written", file=sys.stderr)
        return 2
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"wrote {len(result.plates)} plate(s), {result.fields} field(s) to {result.out}"
              + (f"; {len(result.skipped_sites)} site(s) with problems left out"
                 if result.skipped_sites else ""))
    return 0

