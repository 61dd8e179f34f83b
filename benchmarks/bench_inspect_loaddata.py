"""``inspect`` on CellProfiler LoadData metadata of many plates, images absent.

    python benchmarks/bench_inspect_loaddata.py [--plates 1000] [--wells 384] [--sites 9]

Writes JUMP-style LoadData CSVs (one ``load_data.csv`` per plate under
``load_data_csv/{batch}/{plate}/``, 5 channels, 10 plates per batch, a platemap) with no
image files, then times ``deepnoise-engine inspect --json`` in a fresh process (what a
user waits for: start-up, reading, summarising) and ``open_screen`` in this process, in
wall-clock and CPU seconds (CPU time is what an idle core would take on a loaded machine).
Every site is flagged (its image folder is missing: one problem per folder). Prints one
JSON document; the figures go into docs/performance.md ("Opening LoadData screens").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepnoise_engine.screen.jump_style import LoadDataSpec, write_loaddata_screen
from deepnoise_engine.screen.model import PlateFormat
from deepnoise_engine.screen.open import open_screen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=1000)
    parser.add_argument("--wells", type=int, default=384)
    parser.add_argument("--sites", type=int, default=9)
    parser.add_argument("--out", type=Path, default=None, help="metadata folder (kept)")
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="bench_loaddata_")) if args.out is None else None
    root = args.out or temp / "screen"
    try:
        fmt = PlateFormat.from_well_count(384 if args.wells <= 384 else 1536)
        spec = LoadDataSpec(batches=[f"Batch{b + 1}" for b in range(max(1, args.plates // 10))],
                            plates_per_batch=min(10, args.plates), sites=args.sites,
                            wells=fmt.all_wells()[: args.wells], images=False)
        t0 = time.perf_counter()
        if not (root / "platemap.csv").is_file():
            write_loaddata_screen(root, spec)
        written_s = time.perf_counter() - t0
        csv_bytes = sum(p.stat().st_size for p in root.glob("load_data_csv/*/*/load_data.csv"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "deepnoise_engine", "inspect",
                                 str(root), "--json", "--max-problems", "20"],
                                capture_output=True, text=True, check=True)
        inspect_s = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        inspect_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        summary = json.loads(result.stdout)
        t0, cpu0 = time.perf_counter(), time.process_time()
        screen = open_screen(root)
        open_s, open_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        print(json.dumps({
            "plates": summary["counts"]["plates"], "wells": summary["counts"]["wells"],
            "sites": summary["counts"]["sites"], "csv_mb": round(csv_bytes / 1e6, 1),
            "problems": summary["problems"]["total"],
            "inspect_cli_s": round(inspect_s, 2), "inspect_cli_cpu_s": round(inspect_cpu, 2),
            "open_screen_s": round(open_s, 2), "open_screen_cpu_s": round(open_cpu, 2),
            "sites_per_s": round(screen.site_count() / open_s),
            "write_metadata_s": round(written_s, 1),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_avg": [round(x, 1) for x in os.getloadavg()],
        }, indent=1))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
