"""Put the DeepNoise docks into a napari viewer and open screens into its AppState."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QVBoxLayout, QWidget

from deepnoise_app.canvas_warmup import CAPTION_CHARACTERS, GlyphWarmup, import_lazy_modules
from deepnoise_app.models.screen_opening import load_screen, show_screen
from deepnoise_app.models.state import AppState
from deepnoise_app.napari_compat import layer_controls_dock, main_window, unwrap_viewer
from deepnoise_app.plate_map import PlateMapDock
from deepnoise_app.plate_mosaic import PlateMosaic
from deepnoise_app.screen_browser import ScreenBrowser
from deepnoise_app.state import state_for
from deepnoise_app.well_viewer import WellViewer
from deepnoise_engine.screen.model import Screen

if TYPE_CHECKING:
    from deepnoise_app.workflow import WorkflowDock

log = logging.getLogger(__name__)

_INSTALLED: dict[int, tuple[Any, DeepNoiseDocks]] = {}  # id(viewer) -> (weakref, docks)
IDLE_WARMUP_DELAY_MS = 2000  # the idle warm-up waits this long after the docks install


@dataclass
class DeepNoiseDocks:
    """The widgets installed in one viewer."""

    browser: ScreenBrowser
    plate_map: PlateMapDock
    well_viewer: WellViewer
    mosaic: PlateMosaic
    workflow: WorkflowDock | None = None
    warmup: GlyphWarmup | None = None
    dock_widgets: dict[str, Any] = field(default_factory=dict)


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

            QMessageBox.warning(main_window(viewer), "Cannot open screen",
                                f"{path}\n\n{exc}")

    def done(screen: Screen) -> None:
        try:
            show_screen(state, screen, plate=plate)
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


def installed_docks(viewer: Any) -> DeepNoiseDocks | None:
    """The docks install_docks put into ``viewer`` (None when there are none)."""
    viewer = unwrap_viewer(viewer)
    entry = _INSTALLED.get(id(viewer))
    if entry is None or entry[0]() is not viewer:  # a dead viewer's id can be reused
        return None
    return entry[1]


def install_docks(viewer: Any, state: AppState | None = None) -> DeepNoiseDocks:
    """Add the browser, plate map, view (well viewer and mosaic), workflow, QC and review
    docks to ``viewer`` (once: a second call returns the installed docks)."""
    from deepnoise_app.workflow import install_workflow  # the engine bridge, on first use

    viewer = unwrap_viewer(viewer)
    existing = installed_docks(viewer)
    if existing is not None:
        return existing
    state = state or state_for(viewer)
    browser, plate_map = ScreenBrowser(state), PlateMapDock(state)  # this order: the
    well_viewer = WellViewer(viewer, state)  # order they follow the state's signals in
    docks = DeepNoiseDocks(browser, plate_map, well_viewer,
                           PlateMosaic(viewer, state, well_viewer))
    # napari made the last layer added (the mosaic's, hidden) the active one: the user's
    # layer is a channel (as when the channels were the last added)
    channels = well_viewer.channel_layers()
    if channels and viewer.layers.selection.active not in channels.values():
        viewer.layers.selection.active = channels[max(channels)]
    _add_browsing_docks(viewer, docks)
    docks.workflow = install_workflow(viewer, state)
    _add_qc_docks(viewer, state, docks)
    docks.browser.open_requested.connect(lambda: choose_screen_folder(viewer, state))
    _start_warmup(viewer, docks)
    key = id(viewer)
    try:
        ref = weakref.ref(viewer, lambda _r: _INSTALLED.pop(key, None))
    except TypeError:
        ref = lambda viewer=viewer: viewer  # noqa: E731
    _INSTALLED[key] = (ref, docks)
    return docks


def _add_browsing_docks(viewer: Any, docks: DeepNoiseDocks) -> None:
    """The screen browser (left, over napari's layer controls), the plate map and the view
    dock (right): the well and mosaic controls are small, one dock holds both."""
    window = viewer.window
    docks.dock_widgets["browser"] = window.add_dock_widget(
        docks.browser, name="DeepNoise screen", area="left")
    _tabify_with_layer_controls(viewer, docks.dock_widgets["browser"])
    docks.dock_widgets["plate_map"] = window.add_dock_widget(
        docks.plate_map, name="DeepNoise plate map", area="right")
    view = QWidget()
    view.setObjectName("deepnoise-view")
    layout = QVBoxLayout(view)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(docks.well_viewer)
    layout.addWidget(docks.mosaic)
    docks.dock_widgets["view"] = window.add_dock_widget(view, name="DeepNoise view",
                                                        area="right")
    for name in ("plate_map", "view"):
        keep_contents_visible(docks.dock_widgets[name])


def _start_warmup(viewer: Any, docks: DeepNoiseDocks) -> None:
    """What the first well needs now (the window is not in use yet), the rest (mosaic
    shaders, other glyphs) once the first screen has had time to open."""
    from qtpy.QtCore import QTimer

    well_viewer, mosaic = docks.well_viewer, docks.mosaic
    QTimer.singleShot(0, well_viewer, well_viewer.warm_up_drawing)
    QTimer.singleShot(IDLE_WARMUP_DELAY_MS, mosaic, mosaic.warm_up_drawing)
    docks.warmup = GlyphWarmup(viewer, parent=well_viewer)
    docks.warmup.start(now=CAPTION_CHARACTERS, idle_after_ms=IDLE_WARMUP_DELAY_MS)
    import_lazy_modules()


def _add_qc_docks(viewer: Any, state: AppState, docks: DeepNoiseDocks) -> None:
    """The QC map and the review queue: hidden until the user opens them (Window menu); the
    map is built (and pyqtgraph imported) when it is first shown."""
    from deepnoise_app.lazy_dock import LazyDock
    from deepnoise_app.review_dock import ReviewDock

    def qc_dock() -> QWidget:
        from deepnoise_app.qc_dock import QCDock

        return QCDock(state, bridge=getattr(docks.workflow, "bridge", None))

    window = viewer.window
    docks.dock_widgets["qc"] = window.add_dock_widget(LazyDock(qc_dock), name="DeepNoise QC",
                                                      area="bottom")
    docks.dock_widgets["review"] = window.add_dock_widget(
        ReviewDock(state), name="DeepNoise review", area="right")
    beside = _dock_of(docks.workflow) or docks.dock_widgets["view"]
    try:  # the review queue shares the workflow's place (the plate map stays in sight)
        main_window(viewer).tabifyDockWidget(beside, docks.dock_widgets["review"])
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


def _tabify_with_layer_controls(viewer: Any, dock: Any) -> None:
    """Give the browser the tall top-left place; napari's layer controls become a tab."""
    try:
        main_window(viewer).tabifyDockWidget(layer_controls_dock(viewer), dock)
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, dock.raise_)  # after the window has laid out its tabs
    except (AttributeError, RuntimeError) as exc:  # napari internals moved: keep defaults
        log.info("cannot tabify the screen browser: %s", exc)


def choose_screen_folder(viewer: Any, state: AppState) -> Any:
    """File dialog -> open the chosen screen in the background (errors are shown, never
    raised). Returns the opener's worker, or None when the dialog was cancelled."""
    from qtpy.QtWidgets import QFileDialog

    parent = main_window(viewer)
    folder = QFileDialog.getExistingDirectory(parent, "Open screen folder")
    if not folder:
        return None
    return open_screen_in_background(viewer, state, folder)
