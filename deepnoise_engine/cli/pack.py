"""``deepnoise-engine pack DATASET [--out CACHE] [--json]``: build or update the pack cache."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pack",
        help="pack a screen's images into the memory-mapped cache",
        description="Decode every site of a screen once into one memory-mapped array per plate "
        "(plus per-site statistics). Incremental: plates whose files are unchanged are skipped. "
        "Default cache: DATASET/.deepnoise/pack, or the user cache folder when DATASET is "
        "read-only.",
    )
    parser.add_argument("dataset", metavar="DATASET", help="screen folder")
    parser.add_argument("--out", metavar="CACHE", default=None, help="cache folder")
    parser.add_argument("--workers", type=int, default=None, help="decode threads")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepnoise_engine.contract import Reporter
    from deepnoise_engine.screen.errors import ScreenError
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.pack_cache import pack_screen
    from deepnoise_engine.terminal import TerminalProgress

    bars = TerminalProgress(bars=sys.stderr.isatty() and not args.json, unit="site")
    try:
        screen = open_screen(args.dataset)
        cache = pack_screen(screen, args.out, reporter=Reporter(bars), workers=args.workers)
    except ScreenError as exc:
        print(f"deepnoise-engine pack: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk (DiskFullError), an unwritable cache folder, ...
        from deepnoise_engine.disk_space import DiskFullError

        text = str(exc) if isinstance(exc, DiskFullError) or not exc.filename else (
            f"{exc.filename}: {exc.strerror}; choose another --out cache folder")
        print(f"deepnoise-engine pack: error: {text}", file=sys.stderr)
        return 2
    finally:
        bars.close()
    info = cache.summary()
    info["problems"] = len(screen.problems)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    run_info = info.get("run", {})
    seconds = run_info.get("seconds", 0.0)
    packed = run_info.get("sites_packed", 0)
    rate = f" ({packed / seconds:.0f} sites/s)" if seconds > 0 and packed else ""
    print(f"cache: {info['cache']}")
    print(
        f"plates: {len(run_info.get('packed', []))} packed, "
        f"{len(run_info.get('skipped', []))} already current{rate}"
    )
    print(
        f"sites: {info['sites']} ({info['sites_flagged']} flagged), "
        f"{info['bytes'] / 1e6:.1f} MB, image size {info['image_size']}"
    )
    if info["problems"]:
        print(f"problems: {info['problems']} "
              f"(listed by `deepnoise-engine inspect --verify {args.dataset}`)")
    return 0
