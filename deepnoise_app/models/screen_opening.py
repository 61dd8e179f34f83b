"""Opening a screen (Qt-free): read the folder, prepare what the docks show, select a plate.

``load_screen`` is the slow part and runs in a worker thread (the app's opener); ``show_screen``
makes the result the open screen of an AppState on the main thread.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from deepnoise_app.models.screen_summary import screen_summary
from deepnoise_app.models.settings import Settings
from deepnoise_app.models.state import AppState
from deepnoise_app.models.thumbnails import shared_pixels
from deepnoise_app.models.well_loading import max_sites
from deepnoise_engine.screen.model import Screen

log = logging.getLogger(__name__)

_GC_LOCK = threading.Lock()
_GC_PAUSES = [0, False]  # loads running, whether they turned the cyclic GC off


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
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

    with cyclic_gc_paused():
        screen = open_screen(Path(path))
        shared_pixels(screen)
        screen_summary(screen)  # the browser's counts and problem lists
        max_sites(screen)  # the well viewer's site choices
    remember_recent(path)
    return screen


def remember_recent(path: str | Path) -> None:
    """Put ``path`` first in the recent screens (a read-only config folder is logged)."""
    try:
        Settings().add_recent_screen(path)
    except OSError as exc:  # a read-only config dir must not stop the app
        log.warning("cannot remember recent screen: %s", exc)


def show_screen(state: AppState, screen: Screen, *, plate: str | None = None) -> Screen:
    """Make ``screen`` the open one (main thread): docks follow, ``plate`` or the first is
    selected."""
    state.set_screen(screen)  # load_screen already froze it out of the GC's reach
    select_initial_plate(state, plate)
    return screen


def open_screen_path(state: AppState, path: str | Path, *, plate: str | None = None) -> Screen:
    """Open a screen folder into ``state`` now; selects ``plate`` ("EXP:P" or "EXP/P") or
    the first. The app opens in the background instead (docks.open_screen_in_background).

    Raises the engine's ScreenNotFoundError / MetadataError with their message when the
    folder cannot be opened as a screen.
    """
    return show_screen(state, load_screen(path), plate=plate)


def parse_plate_choice(screen: Screen, plate: str) -> tuple[str, int]:
    """'HEPG2-01:1' or 'HEPG2-01/1' -> ('HEPG2-01', 1); ValueError for a plate not there."""
    exp, sep, index = plate.replace("/", ":").rpartition(":")
    if not sep or exp not in screen.experiments or not index.isdigit():
        raise ValueError(f"no plate {plate!r} in {screen.root}: expected EXPERIMENT:PLATE")
    return exp, int(index)


def select_initial_plate(state: AppState, plate: str | None = None) -> None:
    """Select ``plate`` ("EXP:P" / "EXP/P"), else the first plate, and its first used well
    (one with usable sites when there is one)."""
    screen = state.screen
    if screen is None:
        return
    if plate:
        state.select_plate(*parse_plate_choice(screen, plate))
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
