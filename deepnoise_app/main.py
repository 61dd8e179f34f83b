"""``deepnoise [DATASET]``: napari with the DeepNoise docks on a screen (the demo by default)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from deepnoise_app.canvas_caption import show_text
from deepnoise_app.models.state import AppState
from deepnoise_app.napari_compat import keep_alive, main_window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepnoise",
        description="Browse a high-content screen in napari, train DeepNoise models, score "
                    "and balance siRNA calls. Without DATASET the built-in demo screen opens.",
    )
    parser.add_argument("dataset", nargs="?", help="screen folder (any layout of docs/screens.md)")
    parser.add_argument("--no-demo", action="store_true",
                        help="start without a screen instead of the demo screen")
    parser.add_argument("--plate", metavar="EXP:P", help="plate to show first, e.g. HEPG2-01:1")
    parser.add_argument("--well", metavar="WELL", help="well to show first, e.g. B02")
    parser.add_argument("--mosaic", action="store_true", help="start on the plate mosaic")
    parser.add_argument("--predictions", metavar="SCORE_DIR",
                        help="load per-plate reports ({EXP}_Plate{p}.csv) from a score folder")
    parser.add_argument("--colour", choices=["type", "confidence", "correct", "changed"],
                        help="plate map colour mode to start with")
    parser.add_argument("--screenshot", metavar="PATH",
                        help="save a screenshot of the window once the plate is shown")
    parser.add_argument("--quit-after", action="store_true",
                        help="quit once started (after --screenshot when given)")
    return parser


def _install_file_menu(viewer: Any, state: AppState) -> None:
    """File > Open screen... and File > Recent screens (from the settings file)."""
    from qtpy.QtGui import QAction
    from qtpy.QtWidgets import QMenu

    from deepnoise_app.docks import choose_screen_folder, open_screen_in_background
    from deepnoise_app.models.settings import Settings

    qt_window = main_window(viewer)
    bar = qt_window.menuBar()
    file_menu = None
    for action in bar.actions():
        if action.text().replace("&", "") == "File" and action.menu() is not None:
            file_menu = action.menu()
            break
    if file_menu is None:
        file_menu = bar.addMenu("&DeepNoise")
    first = file_menu.actions()[0] if file_menu.actions() else None
    open_action = QAction("Open screen...", qt_window)
    open_action.triggered.connect(lambda: choose_screen_folder(viewer, state))
    recent_menu = QMenu("Recent screens", file_menu)

    def fill_recent() -> None:
        recent_menu.clear()
        paths = Settings().recent_screens
        if not paths:
            recent_menu.addAction("(none)").setEnabled(False)
        for path in paths:
            action = recent_menu.addAction(path)
            action.triggered.connect(
                lambda _c=False, p=path: open_screen_in_background(viewer, state, p))

    recent_menu.aboutToShow.connect(fill_recent)
    file_menu.insertAction(first, open_action)
    file_menu.insertMenu(first, recent_menu)
    if first is not None:
        file_menu.insertSeparator(first)
    keep_alive(qt_window, "actions", (open_action, recent_menu))


def _open_demo(viewer: Any, then: Any) -> None:
    """Open the demo screen; generated in a worker thread on first run, with progress."""
    from deepnoise_engine.contract import Reporter
    from deepnoise_engine.screen.synthetic import DEMO_DIRNAME, ensure_demo_screen, user_data_dir

    target = user_data_dir() / DEMO_DIRNAME
    if (target / "demo.json").is_file():
        then(target)
        return
    from superqt.utils import create_worker

    from deepnoise_app.workers import run_with_progress

    def work():  # generator worker: yields progress events, returns the screen's folder
        return (yield from run_with_progress(
            lambda report: ensure_demo_screen(reporter=Reporter(report))))

    def progress(event: dict) -> None:
        done, total = event.get("done", 0), event.get("total", 0) or 1
        viewer.status = f"Generating the demo screen (first run): {done}/{total}"
        show_text(viewer, f"Generating the demo screen (first run) ... {100 * done // total}%")

    print("Generating the DeepNoise demo screen (first run) ...", file=sys.stderr)
    show_text(viewer, "Generating the demo screen (first run) ...")
    worker = create_worker(work, _start_thread=False, _ignore_errors=True)
    worker.yielded.connect(progress)
    worker.returned.connect(then)
    worker.errored.connect(lambda exc: _show_error(viewer, f"Cannot create the demo screen: {exc}"))
    keep_alive(main_window(viewer), "demo_worker", worker)
    worker.start()


def _show_error(viewer: Any, message: str) -> None:
    print(message, file=sys.stderr)
    viewer.status = message
    show_text(viewer, message)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``deepnoise``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.dataset and not Path(args.dataset).exists():
        print(f"deepnoise: no such screen folder: {args.dataset}", file=sys.stderr)
        return 2

    import napari
    from qtpy.QtCore import QTimer

    from deepnoise_app.docks import install_docks
    from deepnoise_app.state import state_for
    from deepnoise_app.view_fit import size_to_screen

    viewer = napari.Viewer(title="DeepNoise")
    if args.screenshot:  # a predictable size for screenshots
        main_window(viewer).resize(1500, 950)
    else:
        size_to_screen(main_window(viewer))
    state = state_for(viewer)
    startup = _Startup(viewer, state, install_docks(viewer, state), args)
    _install_file_menu(viewer, state)
    _set_icon(viewer)
    if args.dataset:
        QTimer.singleShot(0, lambda: startup.open(args.dataset))
    elif not args.no_demo:
        QTimer.singleShot(0, lambda: _open_demo(viewer, startup.open))
    else:
        QTimer.singleShot(0, startup.finish)
    napari.run()
    return startup.code


class _Startup:
    """What the command line asks for once the window is up: the screen (read in a
    worker, so the window shows itself meanwhile), the well, predictions, colour mode,
    mosaic, screenshot. ``code`` is the exit status."""

    def __init__(self, viewer: Any, state: AppState, docks: Any, args: Any) -> None:
        self.viewer, self.state, self.docks, self.args = viewer, state, docks, args
        self.code = 0

    def open(self, path: Path | str) -> None:
        """Open the screen in the background; a failure is shown and startup goes on."""
        from deepnoise_app.docks import open_screen_in_background

        def failed(exc: Exception) -> None:  # shown, the window stays usable
            _show_error(self.viewer, f"Cannot open {path}: {exc}")
            self.code = 1
            self.finish()

        open_screen_in_background(self.viewer, self.state, path, plate=self.args.plate,
                                  opened=self.shown, failed=failed)

    def shown(self, _screen: Any) -> None:
        """The screen is open: select ``--well`` (or say it is not there)."""
        if self.args.well:
            try:
                self.state.select_well(self.args.well)
            except KeyError as exc:  # the screen is open: say so, keep the plate's first well
                shown = self.state.well.name if self.state.well else "no well"
                _show_error(self.viewer, f"{exc.args[0]}; showing {shown}")
        self.finish()

    def finish(self) -> None:
        """Predictions, colour mode, mosaic, then the screenshot and quit when asked."""
        args, state = self.args, self.state
        if args.predictions and state.screen is not None:
            try:
                state.load_predictions(args.predictions)
            except (OSError, ValueError) as exc:
                _show_error(self.viewer, f"Cannot load predictions: {exc}")
                self.code = 1
        if args.colour:
            self.docks.plate_map.set_mode(args.colour)
        if args.mosaic:
            self.docks.mosaic.set_shown(True)
        if args.screenshot or args.quit_after:
            _screenshot_when_ready(self.viewer, self.docks, state, args)


def _set_icon(viewer: Any) -> None:
    try:
        from qtpy.QtGui import QIcon

        from deepnoise_engine.resources import resource_path

        main_window(viewer).setWindowIcon(QIcon(str(resource_path("icons", "deepnoise.png"))))
    except (FileNotFoundError, AttributeError):
        pass


def _screenshot_when_ready(viewer: Any, docks: Any, state: AppState, args: Any) -> None:
    """Wait (without blocking) until the well or mosaic is drawn, then screenshot and quit."""
    from qtpy.QtCore import QTimer

    started = time.monotonic()
    timer = QTimer(main_window(viewer))

    def ready() -> bool:
        if state.screen is None or docks.mosaic.warming:
            return False
        if args.mosaic:
            return docks.mosaic.thumbs is not None
        return state.well is None or (docks.well_viewer.loaded_well == state.well.name
                                      and not docks.well_viewer.thumbnails_pending)

    ready_ticks = [0]

    def tick() -> None:
        # two ready ticks in a row: the docks' layout settles after the last load (a
        # message label that grows) before the window is grabbed
        ready_ticks[0] = ready_ticks[0] + 1 if ready() else 0
        if ready_ticks[0] < 2 and time.monotonic() - started < 60:
            return
        timer.stop()
        if args.screenshot:
            path = Path(args.screenshot)
            path.parent.mkdir(parents=True, exist_ok=True)
            viewer.screenshot(str(path), canvas_only=False, flash=False)
            print(f"screenshot written to {path}", file=sys.stderr)
        if args.quit_after:
            viewer.close()

    timer.timeout.connect(tick)
    timer.start(200)
    keep_alive(main_window(viewer), "timer", timer)


if __name__ == "__main__":
    sys.exit(main())
