"""``deepnoise-engine score``: score a screen with trained models and write the reports."""

from __future__ import annotations

import argparse
import json
import sys

from deepnoise_engine.contract.choices import BALANCE_METHODS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score a screen: per-well calls, per-plate balancing, reports",
        description=(
            "Predict every used well of a screen with one or more models (train run folders "
            "or checkpoints; several are ensembled), balance the calls per plate (each siRNA "
            "at most once, within the plate's group when the labelled plates reveal groups) "
            "and write {EXP}_Plate{P}.csv per plate, submission.csv, summary.json/.md."
        ),
    )
    p.add_argument("--data", required=True, metavar="DATASET", help="screen folder")
    p.add_argument("--model", required=True, action="append", metavar="RUN_OR_CKPT",
                   help="train run folder or checkpoint (repeat to ensemble)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the reports")
    p.add_argument("--plates", metavar="EXP:PLATE,...",
                   help="only these plates, e.g. HEPG2-07:1,HEPG2-07:2 (default: all)")
    p.add_argument("--balance", choices=BALANCE_METHODS, default="assignment",
                   help="per-plate balancing (default: assignment, the exact method)")
    p.add_argument("--tta", type=int, choices=(1, 8), default=8,
                   help="test-time augmentation: 8 dihedral transforms or 1 (default 8)")
    p.add_argument("--submission", metavar="FILE",
                   help="also write the challenge submission CSV here")
    p.add_argument("--overwrite", action="store_true", help="replace existing reports")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="sites per forward pass (default 32)")
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="processes for distributed scoring: plates' wells are sharded over N "
                        "GPUs (or CPU processes) through torchrun and gathered on rank 0")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from deepnoise_engine.contract import Reporter
    from deepnoise_engine.model.errors import ModelError
    from deepnoise_engine.report.io import OutputExistsError, ReportError
    from deepnoise_engine.screen.errors import ScreenError
    from deepnoise_engine.terminal import TerminalProgress
    from deepnoise_engine.workflows.score import run_scoring

    if args.batch_size < 1:
        print("error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    if args.devices < 1:
        print("error: --devices must be >= 1", file=sys.stderr)
        return 2
    from deepnoise_engine.train.ddp import env_world_size, relaunch, strip_devices

    if args.devices > 1 and env_world_size() <= 1:
        return relaunch(strip_devices(sys.argv[1:]), args.devices)
    progress = TerminalProgress(lines_every_s=1.0)
    try:
        result = run_scoring(
            args.data, args.model, args.out, plates=args.plates, balance=args.balance,
            tta=args.tta, submission=args.submission, overwrite=args.overwrite,
            batch_size=args.batch_size, device=args.device, reporter=Reporter(progress),
        )
    except (ModelError, ScreenError, OutputExistsError, ReportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    if result.get("rank", 0) != 0:
        return 0  # another rank of a distributed run: rank 0 reports
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    acc = result["accuracy"]
    print(f"scored {len(result['plates'])} plate(s) into {result['out']}")
    if acc["labelled_wells"]:
        print(f"accuracy on {acc['labelled_wells']} labelled treatment wells: "
              f"raw {100 * acc['raw']:.1f}%, balanced {100 * acc['balanced']:.1f}%")
        notes = {"train": "labelled experiments, possibly seen in training",
                 "test": "unlabelled experiments, hidden answers"}
        for split, part in result.get("accuracy_by_split", {}).items():
            if part["labelled_wells"]:
                print(f"  {split} ({notes.get(split, split)}): {part['labelled_wells']} wells, "
                      f"raw {100 * part['raw']:.1f}%, balanced {100 * part['balanced']:.1f}%")
    return 0
