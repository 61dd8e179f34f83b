"""QC speed: ``run_qc`` on profiles of the RxRx1 test-set shape and on the demo.

Goals (docs/performance.md, "## QC"): 19,897 wells with 1,024-dim embeddings (18
experiments x 1,108 siRNAs, planted siRNA / experiment / plate structure) within 30 s on
2 cores; the demo's score folder within 3 s. Run with ``OMP_NUM_THREADS=2``:

    OMP_NUM_THREADS=2 python benchmarks/bench_qc.py [--demo-scores DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

RXRX1_TEST = {"HEPG2": 4, "HUVEC": 8, "RPE": 4, "U2OS": 2}  # 18 x 1,108 = 19,944 wells


def rxrx1_shape(folder: Path, dims: int = 1024) -> Path:
    from deepnoise_engine.qc.synthetic import planted_metadata, write_planted_profiles

    meta = planted_metadata(RXRX1_TEST, plates=4, sirnas=1108)
    drop = np.random.default_rng(0).choice(len(meta), len(meta) - 19897, replace=False)
    meta = meta.drop(index=drop).reset_index(drop=True)
    return write_planted_profiles(folder, meta, dims=dims)


def timed_qc(score_dir: Path) -> tuple[float, dict]:
    from deepnoise_engine.qc.job import run_qc

    t0 = time.perf_counter()
    result = run_qc(score_dir, overwrite=True)
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo-scores", type=Path, help="a score folder of the demo screen")
    args = parser.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = rxrx1_shape(Path(tmp) / "scores")
        seconds, result = timed_qc(folder)
        out["rxrx1_shape"] = {"wells": result["wells"], "seconds": round(seconds, 2),
                              "goal_s": 30, "table": _table(result)}
    if args.demo_scores:
        seconds, result = timed_qc(args.demo_scores)
        out["demo"] = {"wells": result["wells"], "seconds": round(seconds, 2), "goal_s": 3,
                       "table": _table(result)}
    print(json.dumps(out, indent=2))


def _table(result: dict) -> dict:
    return {k: {t: round(r[t]["map"], 3) for t in ("sirna", "experiment", "plate")}
            | {"mixing_experiment": round(r["mixing_experiment"], 2)}
            for k, r in result["profiles"].items()}


if __name__ == "__main__":
    main()
