"""Reading sites from PNG files vs from the pack cache (random order), and packing speed.

    python benchmarks/bench_pack.py [--out DIR] [--image-size 512] [--sirnas-per-plate 25]

Generates (or reuses) a make_demo screen of >= 200 sites of 6 x 512 x 512, packs it,
then times ``read_site`` (6 PNG decodes per site) and ``PackCache.read`` on the same
sites in a shuffled order, one thread each. Both read from a warm OS page cache (the
files were just written), which is the PNG reader's best case. Prints one JSON document;
the figures go into docs/performance.md ("Pack cache").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.open import open_screen
from deepnoise_engine.screen.pack_cache import pack_screen
from deepnoise_engine.screen.synthetic import make_demo


def _sites_by_id(screen):
    return {s.site_id: s for _, _, w in screen.wells() for s in w.sites}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="screen folder (kept; reused)")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--sirnas-per-plate", type=int, default=25)
    parser.add_argument("--png-sites", type=int, default=120, help="sites to read from PNG")
    parser.add_argument("--cache-passes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="decode threads for packing")
    args = parser.parse_args()

    temp = None
    if args.out is None:
        temp = Path(tempfile.mkdtemp(prefix="bench_pack_"))
        root = temp / "screen"
    else:
        root = args.out
    try:
        t0 = time.perf_counter()
        if not (root / "demo.json").is_file():
            make_demo(
                root,
                seed=0,
                cell_types=("HEPG2",),
                train_experiments_per_cell_type=1,
                test_experiments_per_cell_type=0,
                plates_per_experiment=4,
                sirnas_per_plate=args.sirnas_per_plate,
                image_size=args.image_size,
                missing_wells=0,
            )
        make_s = time.perf_counter() - t0
        screen = open_screen(root)
        cache_dir = root / ".deepnoise" / "pack"
        shutil.rmtree(cache_dir, ignore_errors=True)
        t0 = time.perf_counter()
        cache = pack_screen(screen, workers=args.workers)
        pack_s = time.perf_counter() - t0
        n = len(cache.sites)
        rng = np.random.default_rng(0)
        sites = _sites_by_id(screen)

        order = rng.permutation(n)[: args.png_sites]
        t0 = time.perf_counter()
        for i in order:
            read_site(sites[cache.sites.site_id.iat[int(i)]], screen.channels)
        png_rate = len(order) / (time.perf_counter() - t0)

        reads = 0
        t0 = time.perf_counter()
        for _ in range(args.cache_passes):
            for i in rng.permutation(n):
                cache.read(int(i))
                reads += 1
        cache_rate = reads / (time.perf_counter() - t0)

        result = {
            "sites": n,
            "site_shape": [len(cache.channels), *cache.image_size],
            "make_demo_s": round(make_s, 1),
            "pack_s": round(pack_s, 2),
            "pack_sites_per_s": round(n / pack_s, 1),
            "pack_workers": args.workers,
            "png_sites_per_s": round(png_rate, 1),
            "cache_sites_per_s": round(cache_rate, 1),
            "cache_vs_png": round(cache_rate / png_rate, 1),
            "cache_bytes": cache.summary()["bytes"],
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=1))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
