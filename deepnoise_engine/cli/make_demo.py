"""``deepnoise-engine make-demo --out DIR [...]``: write a synthetic screen (synthetic.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-demo",
        help="write a synthetic screen in the RxRx1 layout",
        description="Write a synthetic, fully labelled screen in the RxRx1 Kaggle layout "
        "(CSV files, PNG images, answers/test_answers.csv, demo.json). The same seed gives "
        "byte-identical files. See docs/synthetic.md.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cell-types",
        nargs="+",
        default=["HEPG2", "U2OS"],
        metavar="NAME",
        help="cell types (experiment prefixes), default HEPG2 U2OS",
    )
    parser.add_argument(
        "--experiments-per-cell-type",
        type=int,
        default=2,
        metavar="N",
        help="labelled (train) experiments per cell type",
    )
    parser.add_argument(
        "--test-experiments-per-cell-type",
        type=int,
        default=1,
        metavar="N",
        help="unlabelled (test) experiments per cell type",
    )
    parser.add_argument(
        "--plates-per-experiment",
        type=int,
        default=4,
        metavar="N",
        help="plates per experiment = number of siRNA plate groups",
    )
    parser.add_argument("--plate-format", type=int, choices=(96, 384, 1536), default=96)
    parser.add_argument("--sirnas-per-plate", type=int, default=12, metavar="N")
    parser.add_argument("--positive-controls", type=int, default=2, metavar="N")
    parser.add_argument("--image-size", type=int, default=64, metavar="N", help="pixels (square)")
    parser.add_argument("--sites", type=int, default=2, metavar="N", help="sites per well")
    parser.add_argument("--channels", type=int, default=6, metavar="N")
    parser.add_argument(
        "--missing-wells",
        type=int,
        default=2,
        metavar="N",
        help="treatment wells left out of the screen",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepnoise_engine.contract import Reporter
    from deepnoise_engine.screen.synthetic import make_demo
    from deepnoise_engine.terminal import TerminalProgress

    start = time.monotonic()
    bars = TerminalProgress(bars=sys.stderr.isatty(), unit="site")
    try:
        out = make_demo(
            args.out,
            seed=args.seed,
            cell_types=args.cell_types,
            train_experiments_per_cell_type=args.experiments_per_cell_type,
            test_experiments_per_cell_type=args.test_experiments_per_cell_type,
            plates_per_experiment=args.plates_per_experiment,
            plate_format=args.plate_format,
            sirnas_per_plate=args.sirnas_per_plate,
            positive_controls=args.positive_controls,
            image_size=args.image_size,
            sites=args.sites,
            channels=args.channels,
            missing_wells=args.missing_wells,
            overwrite=args.overwrite,
            reporter=Reporter(bars),
        )
    except (ValueError, FileExistsError) as exc:
        print(f"deepnoise-engine make-demo: error: {exc}", file=sys.stderr)
        return 2
    finally:
        bars.close()
    seconds = time.monotonic() - start
    meta = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps({"out": str(out), "seconds": round(seconds, 3), **meta}))
    else:
        print(
            f"wrote {out} ({len(meta['experiments'])} experiments, {meta['n_classes']} classes) "
            f"in {seconds:.1f} s"
        )
    return 0
