"""Pack cache format: today's memory-mapped ``.npy`` against compressed chunked zarr stores.

    python benchmarks/bench_pack_store.py [--sample ../shared/rxrx1-sample] [--sites 1000]
                                          [--threads 2] [--reads 600] [--out DIR]

Real pixels: the RxRx1 sample's complete sites (6 x 512 x 512 PNGs) are replicated to
``--sites`` sites, each a random rotation/flip and circular shift of one of them (the
compressors see real microscopy noise and texture, never two identical chunks). The same
``(n, 6, 512, 512)`` uint8 plate is written as today's ``.npy`` and as zarr v3 arrays with
one chunk per site, blosc lz4 / zstd. Each store is then read at random sites by
``--threads`` threads (the pack cache's reads in training: one site at a time), after a
warm-up pass so both read from the OS page cache; ``bare_decode`` reads the same chunk
files and decodes them with numcodecs directly (no zarr), the best any store of these
chunks could do. Prints one JSON document; the figures go
into docs/performance.md ("Pack cache format").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "rxrx1-sample"
CODECS = {  # name -> (cname, clevel, shuffle)
    "zarr-blosc-lz4": ("lz4", 5, "noshuffle"),
    "zarr-blosc-lz4-bitshuffle": ("lz4", 5, "bitshuffle"),
    "zarr-blosc-zstd1": ("zstd", 1, "noshuffle"),
    "zarr-blosc-zstd5": ("zstd", 5, "noshuffle"),
}


def real_sites(sample: Path) -> np.ndarray:
    """Every complete site of the sample as ``(n, 6, 512, 512)`` uint8."""
    from deepnoise_engine.screen.images import read_site
    from deepnoise_engine.screen.open import open_screen

    screen = open_screen(sample)
    sites = [s for _, _, w in screen.wells() for s in w.sites if s.ok]
    return np.stack([read_site(s, screen.channels) for s in sites])


def replicate(sources: np.ndarray, n: int, seed: int = 0):
    """Yield ``n`` sites: a random dihedral transform and circular shift of a source."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        site = sources[rng.integers(len(sources))]
        site = np.rot90(site, k=int(rng.integers(4)), axes=(1, 2))
        if rng.integers(2):
            site = site[:, :, ::-1]
        shift = rng.integers(0, site.shape[1], 2)
        yield np.ascontiguousarray(np.roll(site, tuple(int(s) for s in shift), axis=(1, 2)))


def write_npy(path: Path, sources: np.ndarray, n: int) -> float:
    t0 = time.perf_counter()
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                      shape=(n, *sources.shape[1:]))
    for i, site in enumerate(replicate(sources, n)):
        array[i] = site
    array.flush()
    del array
    return time.perf_counter() - t0


def write_zarr(path: Path, sources: np.ndarray, n: int, codec: tuple[str, int, str]) -> float:
    import zarr
    from zarr.codecs import BloscCodec

    cname, clevel, shuffle = codec
    t0 = time.perf_counter()
    array = zarr.create_array(str(path), shape=(n, *sources.shape[1:]), dtype="uint8",
                              chunks=(1, *sources.shape[1:]),
                              compressors=[BloscCodec(cname=cname, clevel=clevel,
                                                      shuffle=shuffle)],
                              zarr_format=3)
    batch = 32
    sites = replicate(sources, n)
    for start in range(0, n, batch):
        block = np.stack([next(sites) for _ in range(min(batch, n - start))])
        array[start:start + len(block)] = block
    return time.perf_counter() - t0


def chunk_reader(store: Path, codec: tuple[str, int, str], shape: tuple[int, ...]):
    """Read a site's chunk file and decode it with numcodecs' blosc, without zarr: the
    upper bound of any store built on these chunks."""
    from numcodecs import Blosc

    blosc = Blosc(cname=codec[0], clevel=codec[1])

    def read(i: int) -> np.ndarray:
        data = (store / "c" / str(i) / "0" / "0" / "0").read_bytes()
        return np.frombuffer(blosc.decode(data), np.uint8).reshape(shape)

    return read


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def random_reads(read, n: int, reads: int, threads: int) -> float:
    """Sites per second of ``read(i)`` at random ``i`` on ``threads`` threads."""
    order = np.random.default_rng(1).integers(0, n, reads)
    for i in order[: min(32, reads)]:  # warm-up (opens, first page faults)
        read(int(i))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(lambda i: read(int(i)), order):
            pass
    return reads / (time.perf_counter() - t0)


def warm(path: Path) -> None:
    """Read every byte once so each store is measured from the OS page cache."""
    for file in ([path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                      if p.is_file())):
        with open(file, "rb") as handle:
            while handle.read(1 << 24):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: temp)")
    args = parser.parse_args()
    import zarr

    zarr.config.set({"threading.max_workers": args.threads})
    sources = real_sites(args.sample)
    work = Path(tempfile.mkdtemp(prefix="bench_pack_store_", dir=args.out))
    results = {}
    try:
        npy = work / "plate.npy"
        write_s = write_npy(npy, sources, args.sites)
        warm(npy)
        mapped = np.load(npy, mmap_mode="r")
        rate = random_reads(lambda i: np.array(mapped[i]), args.sites, args.reads,
                            args.threads)
        results["npy-memmap"] = {"bytes": folder_bytes(npy), "write_s": round(write_s, 1),
                                 "sites_per_s": round(rate)}
        raw = folder_bytes(npy)
        npy.unlink()
        for name, codec in CODECS.items():
            store = work / f"{name}.zarr"
            write_s = write_zarr(store, sources, args.sites, codec)
            warm(store)
            array = zarr.open_array(str(store), mode="r")
            rate = random_reads(lambda i, a=array: a[i], args.sites, args.reads, args.threads)
            bare = random_reads(chunk_reader(store, codec, sources.shape[1:]), args.sites,
                                args.reads, args.threads)
            size = folder_bytes(store)
            results[name] = {"bytes": size, "size_vs_npy": round(size / raw, 3),
                             "write_s": round(write_s, 1), "sites_per_s": round(rate),
                             "bare_decode_sites_per_s": round(bare)}
            shutil.rmtree(store)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    png = sum(p.stat().st_size for p in args.sample.glob("images/*/*/*/*_s1_w*.png"))
    print(json.dumps({
        "sites": args.sites, "source_sites": len(sources), "site_shape": list(sources.shape[1:]),
        "threads": args.threads, "reads": args.reads, "stores": results,
        "png_bytes_per_site": round(png / len(sources)),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "load_avg": [round(x, 1) for x in os.getloadavg()],
    }, indent=1))


if __name__ == "__main__":
    main()
