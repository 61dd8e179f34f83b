"""App speed: plate map, a well's channels, the plate mosaic, event-loop stalls, memory.

Needs a display (``xvfb-run -a python benchmarks/bench_app.py``). The screen is a make_demo
screen in 384-well format with 512 px images (generated once into /tmp, a few minutes).
Goals (docs/performance.md, "## App"): plate map ready <= 0.5 s after choosing a plate; a
well's 6 channels at 512 px <= 0.3 s; a 308-well mosaic from the pack cache <= 3 s and from
cached thumbnails <= 0.5 s; the event loop never blocked > 100 ms while loading; memory
bounded while browsing every plate of an experiment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SCREEN = Path(tempfile.gettempdir()) / "deepnoise-bench-app-384"
DEFAULT_LARGE_SCREEN = Path(__file__).resolve().parents[2] / "shared" / "rxrx1-sample"


def make_bench_screen(path: Path) -> Path:
    """One HEPG2 experiment, 2 plates x 308 wells (277 siRNAs + 30 + 1 controls), 512 px."""
    from deepnoise_engine.screen.synthetic import make_demo

    if (path / "demo.json").is_file():
        return path
    print(f"generating the benchmark screen in {path} (once, a few minutes) ...", flush=True)
    return make_demo(path, seed=1, cell_types=("HEPG2",), train_experiments_per_cell_type=1,
                     test_experiments_per_cell_type=0, plates_per_experiment=2,
                     plate_format=384, sirnas_per_plate=277, positive_controls=30,
                     image_size=512, sites=1, missing_wells=0)


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process in MiB (Linux /proc): VmRSS (all) or RssAnon (heap,
    without the pack cache's memory-mapped file pages, which the kernel can drop)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Heartbeat:
    """A 10 ms QTimer; ``max_gap_ms`` is the longest time the event loop did not run it."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.max_gap_ms = 0.0
        self.stalls: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = (now - self.last) * 1000
        self.max_gap_ms = max(self.max_gap_ms, gap)
        if gap > 20:  # anything longer than two ticks is a stall worth counting
            self.stalls.append(gap)
        self.last = now

    def finish(self) -> float:
        """Count the time since the last tick too (synchronous work at the end of a phase)."""
        self._tick()
        return self.max_gap_ms

    def reset(self) -> None:
        self.last = time.perf_counter()
        self.max_gap_ms = 0.0
        self.stalls: list[float] = []

    def summary(self) -> dict[str, float]:
        """Stalls of the phase: count over 100 ms, 95th percentile and maximum (ms)."""
        self.finish()
        stalls = sorted(self.stalls) or [0.0]
        return {"over_100ms": sum(s > 100 for s in stalls), "stalls": len(self.stalls),
                "p95": stalls[min(len(stalls) - 1, int(0.95 * len(stalls)))],
                "max": self.max_gap_ms}

    def start(self) -> None:
        self.reset()
        self.timer.start()


def wait_until(condition: Any, timeout: float = 60.0) -> float:
    """Run the event loop until ``condition()``; returns the seconds waited."""
    from qtpy.QtWidgets import QApplication

    start = time.perf_counter()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - start > timeout:
            raise TimeoutError("condition not met in time")
    return time.perf_counter() - start


def react() -> None:
    """A user's next click comes after they see the result: let the frame that shows it be
    drawn (and ~50 ms pass) first, so that one stall never spans two user actions."""
    settle(0.05)


def settle(seconds: float = 0.5) -> None:
    """Let the event loop run (queued repaints, deferred refreshes) for a moment."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.005)


def run(screen_path: Path, wells_per_test: int = 20,
        large_screen: Path | None = None) -> dict[str, Any]:
    os.environ.setdefault("DEEPNOISE_NO_ENGINE_AUTOSTART", "1")
    os.environ.setdefault("DEEPNOISE_NO_AUTO_DEMO", "1")
    os.environ["DEEPNOISE_CACHE_DIR"] = tempfile.mkdtemp(prefix="deepnoise-bench-cache-")
    import napari
    from qtpy.QtWidgets import QApplication

    from deepnoise_app.docks import install_docks, open_screen_in_background
    from deepnoise_app.models.thumbnails import PixelSource, ThumbnailCache
    from deepnoise_app.state import state_for
    from deepnoise_engine.screen import open_screen
    from deepnoise_engine.screen.pack_cache import pack_screen

    results: dict[str, Any] = {"screen": str(screen_path)}
    t = time.perf_counter()
    screen = open_screen(screen_path)
    results["open_screen_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pack_screen(screen)
    results["pack_s"] = time.perf_counter() - t
    screen = open_screen(screen_path)
    plates = list(screen.plates())
    results["plates"] = len(plates)
    results["wells_per_plate"] = len(plates[0].wells)
    results["image_size"] = list(screen.image_size or ())

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    state = state_for(viewer)
    docks = install_docks(viewer, state)
    settle(0.5)  # the window's first frames
    # 0. opening the screen (on the event loop, as File > Open does) and its first well
    heartbeat = Heartbeat()
    heartbeat.start()
    t = time.perf_counter()
    opened: list[Any] = []
    # as File > Open does: read in a worker, then shown (selects plate 1, freezes the GC)
    open_screen_in_background(viewer, state, screen_path, opened=opened.append)
    wait_until(lambda: bool(opened))
    results["open_screen_in_app_s"] = time.perf_counter() - t
    wait_until(lambda: state.well is not None and docks.well_viewer.loaded_well == state.well.name)
    results["first_well_s"] = time.perf_counter() - t
    settle(0.2)
    heartbeat.timer.stop()
    results["open_and_first_well_stalls_ms"] = heartbeat.summary()
    screen = state.screen
    plates = list(screen.plates())
    # the app rasterises the canvas font's glyphs in idle time right after opening (about a
    # second); a user's first clicks come later, so the measurements start once it is done
    settle(0.2)
    wait_until(lambda: docks.warmup is None or docks.warmup.done, timeout=30)
    heartbeat.start()
    wv, pmap, mosaic = docks.well_viewer, docks.plate_map, docks.mosaic

    # 1. plate map ready after choosing a plate (state change + a synchronous repaint)
    times = []
    for plate in plates * 3:
        t = time.perf_counter()
        state.select_plate(plate.experiment, plate.index)
        pmap.map.grab()  # forces the paint (repaint() may be skipped when obscured)
        times.append(time.perf_counter() - t)
    results["plate_map_ready_s"] = {"median": statistics.median(times), "max": max(times)}

    # 2. a well's 6 channels (read + layer update), blocking, from the pack cache and from PNG
    plate = plates[0]
    state.select_plate(plate.experiment, plate.index)
    wells = plate.used_wells()[:: max(1, len(plate.wells) // wells_per_test)][:wells_per_test]
    for label, pixels in (("pack", PixelSource(screen)), ("png", PixelSource(screen,
                                                                             use_pack=False))):
        wv.pixels = pixels
        times = []
        for well in wells:
            state.well = well  # select without triggering the async load
            t = time.perf_counter()
            wv.reload(block=True)
            times.append(time.perf_counter() - t)
        results[f"well_6ch_{label}_s"] = {"median": statistics.median(times), "max": max(times),
                                          "pack_used": pixels.has_pack}
    wv.pixels = PixelSource(screen)
    settle()  # the blocking loads above left repaints queued: not phase 3's stalls

    # 3. wells loaded asynchronously: latency to pixels on screen, event-loop stalls
    heartbeat.reset()
    times = []
    for well in reversed(wells):
        t = time.perf_counter()
        state.select_well(well.name)
        wait_until(lambda w=well: wv.loaded_well == w.name)
        times.append(time.perf_counter() - t)
        react()
    results["well_async_s"] = {"median": statistics.median(times), "max": max(times)}
    results["well_async_stalls_ms"] = heartbeat.summary()
    results["well_async_max_stall_ms"] = results["well_async_stalls_ms"]["max"]

    # 4. mosaic: from the pack cache (no thumbnails yet), from disk thumbnails, from memory
    heartbeat.reset()
    ready: list[str] = []
    mosaic.mosaic_ready.connect(ready.append)
    t = time.perf_counter()
    mosaic.set_shown(True)
    wait_until(lambda: plate.key in ready, timeout=120)
    results["mosaic_from_pack_s"] = time.perf_counter() - t
    react()
    results["mosaic_from_pack_stalls_ms"] = heartbeat.summary()
    results["mosaic_from_pack_max_stall_ms"] = results["mosaic_from_pack_stalls_ms"]["max"]
    mosaic.cache = ThumbnailCache(screen, size=mosaic.size)  # a new session: disk copy only
    heartbeat.reset()
    ready.clear()
    t = time.perf_counter()
    mosaic.load_plate(plate)
    wait_until(lambda: plate.key in ready)
    results["mosaic_from_disk_thumbnails_s"] = time.perf_counter() - t
    react()
    ready.clear()
    t = time.perf_counter()
    mosaic.load_plate(plate)
    wait_until(lambda: plate.key in ready)
    results["mosaic_from_memory_s"] = time.perf_counter() - t
    react()
    results["mosaic_cached_stalls_ms"] = heartbeat.summary()
    results["mosaic_cached_max_stall_ms"] = results["mosaic_cached_stalls_ms"]["max"]

    # 5. memory while browsing every plate of the experiment (mosaic + 20 wells each), twice
    rss = [rss_mb()]
    anon = [rss_mb("RssAnon")]
    heartbeat.reset()
    for _round in range(2):
        for p in plates:
            if state.plate is not p:
                ready.clear()
                state.select_plate(p.experiment, p.index)
                wait_until(lambda p=p: p.key in ready, timeout=120)
                react()
            for well in p.used_wells()[:wells_per_test]:
                state.select_well(well.name)
                wait_until(lambda w=well: wv.loaded_well == w.name)
                react()
            rss.append(rss_mb())
            anon.append(rss_mb("RssAnon"))
    results["browse_stalls_ms"] = heartbeat.summary()
    results["browse_max_stall_ms"] = results["browse_stalls_ms"]["max"]
    # napari's canvas render alone (software OpenGL under Xvfb here): part of every stall
    canvas = viewer.window._qt_viewer.canvas.native
    renders = []
    for _ in range(10):
        t = time.perf_counter()
        canvas.repaint()
        QApplication.processEvents()
        renders.append(time.perf_counter() - t)
    results["canvas_render_ms_median"] = statistics.median(renders) * 1000
    results["rss_mb_after_each_plate"] = [round(r, 1) for r in rss]
    results["rss_anon_mb_after_each_plate"] = [round(r, 1) for r in anon]
    results["rss_growth_second_round_mb"] = round(rss[-1] - rss[len(plates)], 1)
    results["rss_anon_growth_second_round_mb"] = round(anon[-1] - anon[len(plates)], 1)
    # 6. opening a large screen (the real RxRx1 metadata: 204 plates, 125,510 sites) while
    # another is open, as File > Open does: read in a worker, then shown with its first well
    if large_screen is not None:
        heartbeat.reset()
        opened: list[Any] = []
        t = time.perf_counter()
        open_screen_in_background(viewer, state, large_screen, opened=opened.append,
                                  failed=opened.append)
        wait_until(lambda: bool(opened), timeout=120)
        results["large_screen"] = str(large_screen)
        results["large_open_s"] = time.perf_counter() - t
        wait_until(lambda: state.well is None or wv.loaded_well == state.well.name)
        settle(0.3)
        results["large_open_stalls_ms"] = heartbeat.summary()
    heartbeat.timer.stop()
    viewer.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screen", type=Path, default=DEFAULT_SCREEN)
    parser.add_argument("--wells", type=int, default=20, help="wells per timing loop")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--large-screen", type=Path, default=DEFAULT_LARGE_SCREEN,
                        help="a big screen to open at the end (default: the RxRx1 sample's "
                             "metadata beside the repository, when present)")
    args = parser.parse_args(argv)
    make_bench_screen(args.screen)
    large = args.large_screen if args.large_screen and args.large_screen.is_dir() else None
    results = run(args.screen, args.wells, large)
    text = json.dumps(results, indent=2, default=float)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
