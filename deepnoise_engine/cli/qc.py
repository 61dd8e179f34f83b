"""``deepnoise-engine qc SCORE_DIR``: noise-removal QC of a scoring run's well profiles."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "qc",
        help="noise-removal QC of a score folder: siRNA vs experiment/plate retrieval",
        description=(
            "Read a score folder's well profiles (profiles/*.parquet) and measure, for the "
            "raw and normalised pixel statistics and for the model's embeddings, replicate "
            "retrieval per siRNA (mAP, higher is better), experiment and plate retrieval "
            "(lower is better) and k-NN mixing of experiments. Writes qc.json, qc.md and "
            "figures (PNG, SVG) into SCORE_DIR/qc."
        ),
    )
    p.add_argument("score_dir", metavar="SCORE_DIR", help="folder written by `score`")
    p.add_argument("--out", metavar="DIR", help="output folder (default SCORE_DIR/qc)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing QC report")
    p.add_argument("--block", type=int, default=512, metavar="N",
                   help="wells each query is ranked against (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random blocks")
    p.add_argument("--json", action="store_true", help="print qc.json")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from deepnoise_engine.qc.job import run_qc
    from deepnoise_engine.report.io import OutputExistsError, ReportError

    if args.block < 2:
        print("error: --block must be >= 2", file=sys.stderr)
        return 2
    try:
        result = run_qc(args.score_dir, args.out, overwrite=args.overwrite, block=args.block,
                        seed=args.seed)
    except (ReportError, OutputExistsError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print((Path(result["out"]) / "qc.json").read_text())
        return 0
    print((Path(result["out"]) / "qc.md").read_text())
    print(f"wrote {len(result['files'])} files into {result['out']} in {result['seconds']} s")
    return 0
