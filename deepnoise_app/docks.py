"""Put the DeepNoise docks into a napari viewer and open screens into its AppState."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QVBoxLayout, QWidget

from deepnoise_app.canvas_warmup import CAPTION_CHARACTERS, GlyphWarmup, import_lazy_modules
from deepnoise_app.plate_map import PlateMapDock
from deepnoise_app.plate_mosaic import PlateMosaic
from deepnoise_app.screen_browser import ScreenBrowser, screen_summary
from deepnoise_app.state import AppState, state_for, unwrap_viewer
from deepnoise_app.thumbnails import shared_pixels
from deepnoise_app.well_viewer import WellViewer, max_sites
from deepnoise_engine.screen.model import Screen

log = logging.getLogger(__name__)

_INSTALLED: dict[int, tuple[Any, DeepNoiseDocks]] = {}  # id(viewer) -> (weakref, docks)
IDLE_WARMUP_DELAY_MS = 2000  # the idle warm-up waits this long after the docks install


@dataclass
class DeepNoiseDocks:
    """The widgets installed in one viewer (``workflow`` is None without H7b's package)."""

    browser: ScreenBrowser
    plate_map: PlateMapDock
    well_viewer: WellViewer
    mosaic: PlateMosaic
    workflow: QWidget | None = None
    warmup: GlyphWarmup | None = None
    dock_widgets: dict[str, Any] = field(default_factory=dict)


_GC_LOCK = threading.Lock()
_GC_PAUSES = [0, False]  # loads running, whether they turned the cyclic GC off


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No automatic cyclic GC while a screen is read, and what was read frozen at the end.

    A screen is a large, long-lived object graph (RxRx1: ~0.5 M objects). Reading it let
    automatic full collections scan the growing heap holding the GIL (200-350 ms each, the
    window frozen), and later full passes over it stalled the UI ~150 ms now and then.
    ``gc.freeze`` moves it out of the GC's reach without a scan; the model is a tree, so
    reference counting still frees a screen that is replaced."""
    with _GC_LOCK:
        if _GC_PAUSES[0] == 0:
            _GC_PAUSES[1] = gc.isenabled()
            gc.disable()
        _GC_PAUSES[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES[0] -= 1
            if _GC_PAUSES[0] == 0:
                gc.freeze()  # instant: no scan, unlike a collection
                if _GC_PAUSES[1]:
                    gc.enable()


def load_screen(path: str | Path) -> Screen:
    """Read a screen folder and open its pixel source (pack cache index): the slow part of
    opening, safe to run in a worker thread (nothing here touches Qt or the AppState)."""
    from deepnoise_engine.screen import open_screen

    with _cyclic_gc_paused():
        screen = open_screen(Path(path))
        shared_pixels(screen)
        screen_summary(screen)  # the browser's counts and problem lists
        max_sites(screen)  # the well viewer's site choices
    _remember_recent(path)
    return screen


def _remember_recent(path: str | Path) -> None:
    try:
        from deepnoise_app.settings import Settings

        Settings().add_recent_screen(path)
    except OSError as exc:  # a read-only config dir must not stop the app
        log.warning("cannot remember recent screen: %s", exc)


def show_screen(state: AppState, screen: Screen, path: str | Path, *,
                plate: str | None = None) -> Screen:
    """Make ``screen`` the open one (main thread): docks follow, ``plate`` or the first is
    selected (load_screen put the folder in the recent screens)."""
    state.set_screen(screen)  # load_screen already froze it out of the GC's reach
    select_initial_plate(state, plate)
    return screen


def open_screen_path(state: AppState, path: str | Path, *, plate: str | None = None) -> Screen:
    """Open a screen folder into ``state`` now; selects ``plate`` ("EXP:P" or "EXP/P") or
    the first. The app opens in the background instead (open_screen_in_background).

    Raises the engine's ScreenNotFoundError / MetadataError with their message when the
    folder cannot be opened as a screen.
    """
    return show_screen(state, load_screen(path), path, plate=plate)


_OPENING: set[Any] = set()  # running opener workers (kept alive until they finish)


def open_screen_in_background(
    viewer: Any,
    state: AppState,
    path: str | Path,
    *,
    plate: str | None = None,
    opened: Callable[[Screen], None] | None = None,
    failed: Callable[[Exception], None] | None = None,
) -> Any:
    """Open a screen without blocking the window: the folder is read in a worker thread
    (0.1 s for the demo, ~1 s for the full RxRx1 metadata), then shown. ``opened(screen)``
    or ``failed(error)`` follow on the main thread; without ``failed`` a message box says
    what went wrong. Returns the worker."""
    # superqt's worker with our own error handling (as everywhere in the app): napari's adds
    # a task-status slot to ``errored`` that takes no argument (a TypeError in the event
    # loop whenever a worker fails) and re-raises the error in the main thread
    from superqt.utils import create_worker

    viewer.status = f"Opening screen {path} ..."
    worker = create_worker(load_screen, path, _start_thread=False, _ignore_errors=True)

    def fail(exc: Exception) -> None:
        viewer.status = f"Cannot open {path}"
        if failed is not None:
            failed(exc)
        else:
            from qtpy.QtWidgets import QMessageBox

            QMessageBox.warning(viewer.window._qt_window, "Cannot open screen",
                                f"{path}\n\n{exc}")

    def done(screen: Screen) -> None:
        try:
            show_screen(state, screen, path, plate=plate)
        except Exception as exc:  # e.g. no such plate: the screen is open, say what failed
            fail(exc)
            return
        viewer.title = f"DeepNoise - {screen.name or Path(screen.root).name}"
        viewer.status = f"Opened {screen.name or Path(screen.root).name}"
        if opened is not None:
            opened(screen)

    worker.returned.connect(done)
    worker.errored.connect(fail)
    worker.finished.connect(lambda: _OPENING.discard(worker))
    _OPENING.add(worker)
    worker.start()
    return worker


def select_initial_plate(state: AppState, plate: str | None = None) -> None:
    """Select ``plate`` ("EXP:P" / "EXP/P"), else the first plate, and its first used well."""
    screen = state.screen
    if screen is None:
        return
    if plate:
        exp, sep, index = plate.replace("/", ":").rpartition(":")
        if not sep or exp not in screen.experiments or not index.isdigit():
            raise ValueError(f"no plate {plate!r} in {screen.root}: expected EXPERIMENT:PLATE")
        state.select_plate(exp, int(index))
    else:
        first = next(screen.plates(), None)
        if first is None:
            return
        state.select_plate(first.experiment, first.index)
    if state.well is None and state.plate is not None:
        used = state.plate.used_wells()
        preferred = next((w for w in used if w.usable_sites), used[0] if used else None)
        if preferred is not None:
            state.select_well(preferred.name)


def installed_docks(viewer: Any) -> DeepNoiseDocks | None:
    """The docks install_docks put into ``viewer`` (None when there are none)."""
    viewer = unwrap_viewer(viewer)
    entry = _INSTALLED.get(id(viewer))
    if entry is None or entry[0]() is not viewer:  # a dead viewer's id can be reused
        return None
    return entry[1]


def install_docks(viewer: Any, state: AppState | None = None) -> DeepNoiseDocks:
    """Add the browser, plate map, well viewer and mosaic docks (and H7b's workflow dock)."""
    viewer = unwrap_viewer(viewer)
    existing = installed_docks(viewer)
    if existing is not None:
        return existing
    state = state or state_for(viewer)
    window = viewer.window
    browser = ScreenBrowser(state)
    plate_map = PlateMapDock(state)
    well_viewer = WellViewer(viewer, state)
    mosaic = PlateMosaic(viewer, state, well_viewer)
    docks = DeepNoiseDocks(browser, plate_map, well_viewer, mosaic)
    # napari made the last layer added (the mosaic's, hidden) the active one: the user's
    # layer is a channel (as when the channels were the last added)
    channels = well_viewer.channel_layers()
    if channels and viewer.layers.selection.active not in channels.values():
        viewer.layers.selection.active = channels[max(channels)]
    docks.dock_widgets["browser"] = window.add_dock_widget(
        browser, name="DeepNoise screen", area="left")
    _tabify_with_layer_controls(window, docks.dock_widgets["browser"])
    docks.dock_widgets["plate_map"] = window.add_dock_widget(
        plate_map, name="DeepNoise plate map", area="right")
    # the well and mosaic controls are small: one dock holds both
    view = QWidget()
    view.setObjectName("deepnoise-view")
    layout = QVBoxLayout(view)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(well_viewer)
    layout.addWidget(mosaic)
    docks.dock_widgets["view"] = window.add_dock_widget(view, name="DeepNoise view",
                                                        area="right")
    for name in ("plate_map", "view"):
        keep_contents_visible(docks.dock_widgets[name])
    try:
        from deepnoise_app.workflow import install_workflow
    except ImportError as exc:  # the workflow package is optional for browsing
        log.info("workflow dock not available: %s", exc)
    else:
        docks.workflow = install_workflow(viewer, state)
    _install_qc_docks(window, state, docks)
    browser.open_requested.connect(lambda: choose_screen_folder(viewer, state))
    # warm-up: what the first well needs now (the window is not in use yet), the rest
    # (mosaic shaders, other glyphs) once the first screen has had time to open
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, well_viewer, well_viewer.warm_up_drawing)
    QTimer.singleShot(IDLE_WARMUP_DELAY_MS, mosaic, mosaic.warm_up_drawing)
    docks.warmup = GlyphWarmup(viewer, parent=well_viewer)
    docks.warmup.start(now=CAPTION_CHARACTERS, idle_after_ms=IDLE_WARMUP_DELAY_MS)
    import_lazy_modules()
    key = id(viewer)
    try:
        ref = weakref.ref(viewer, lambda _r: _INSTALLED.pop(key, None))
    except TypeError:
        ref = lambda viewer=viewer: viewer  # noqa: E731
    _INSTALLED[key] = (ref, docks)
    return docks


def _install_qc_docks(window: Any, state: AppState, docks: DeepNoiseDocks) -> None:
    """The QC map and the review queue: hidden until the user opens them (Window menu); the
    map is built (and pyqtgraph imported) when it is first shown."""
    from deepnoise_app.lazy_dock import LazyDock
    from deepnoise_app.review_dock import ReviewDock

    def qc_dock() -> QWidget:
        from deepnoise_app.qc_dock import QCDock

        return QCDock(state, bridge=getattr(docks.workflow, "bridge", None))

    docks.dock_widgets["qc"] = window.add_dock_widget(LazyDock(qc_dock), name="DeepNoise QC",
                                                      area="bottom")
    docks.dock_widgets["review"] = window.add_dock_widget(
        ReviewDock(state), name="DeepNoise review", area="right")
    beside = _dock_of(docks.workflow) or docks.dock_widgets["view"]
    try:  # the review queue shares the workflow's place (the plate map stays in sight)
        window._qt_window.tabifyDockWidget(beside, docks.dock_widgets["review"])
    except (AttributeError, RuntimeError) as exc:
        log.info("cannot tabify the review queue: %s", exc)
    for name in ("qc", "review"):
        docks.dock_widgets[name].hide()


def _dock_of(widget: Any) -> Any:
    """The QDockWidget holding ``widget`` (None when it is not docked)."""
    from qtpy.QtWidgets import QDockWidget

    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


def keep_contents_visible(dock: Any) -> None:
    """Let a napari dock's minimum height follow its contents' minimum.

    napari gives every dock a fixed 50 px minimum, so a crowded dock area squeezed a dock
    below its widget's minimum and Qt clipped the widget (the plate map lost its legend,
    a long site message its second line). With no explicit minimum Qt uses the dock's
    minimumSizeHint, which follows the contents (a 384-well plate, a message shown).
    """
    dock.setMinimumHeight(0)


def _tabify_with_layer_controls(window: Any, dock: Any) -> None:
    """Give the browser the tall top-left place; napari's layer controls become a tab."""
    try:
        controls = window._qt_viewer.dockLayerControls
        window._qt_window.tabifyDockWidget(controls, dock)
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, dock.raise_)  # after the window has laid out its tabs
    except (AttributeError, RuntimeError) as exc:  # napari internals moved: keep defaults
        log.info("cannot tabify the screen browser: %s", exc)


def choose_screen_folder(viewer: Any, state: AppState) -> Any:
    """File dialog -> open the chosen screen in the background (errors are shown, never
    raised). Returns the opener's worker, or None when the dialog was cancelled."""
    from qtpy.QtWidgets import QFileDialog

    parent = viewer.window._qt_window
    folder = QFileDialog.getExistingDirectory(parent, "Open screen folder")
    if not folder:
        return None
    return open_screen_reporting(viewer, state, folder)


def open_screen_reporting(viewer: Any, state: AppState, folder: str | Path) -> Any:
    """Open a screen in the background; failures are shown in a message box. Returns the
    opener's worker."""
    return open_screen_in_background(viewer, state, folder)
