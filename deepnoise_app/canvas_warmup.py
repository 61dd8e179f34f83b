"""Warm the canvas up in idle time so that the first well of each row does not stall it.

napari draws canvas text (the well caption, the mosaic's siRNA labels) from a glyph atlas
that rasterises each character the first time it is drawn: 5-15 ms per glyph on the CPU,
inside the paint. Browsing a plate meets new characters (row letters, digits, siRNA names)
for many wells, so a paint that also uploads six 512 px channels went over the event-loop
budget. ``GlyphWarmup`` loads the caption's characters into the canvas's font atlas at
start and every other printable character one per idle timer tick afterwards.
``draw_once_invisibly`` does the same for layers' shader programs, ``import_lazy_modules``
for modules the first frames would import.
"""

from __future__ import annotations

import importlib
import logging
import string
from collections.abc import Callable, Sequence
from typing import Any

from qtpy.QtCore import QObject, QTimer

from deepnoise_app.napari_compat import canvas_text_font

log = logging.getLogger(__name__)

#: the well caption's characters ("HEPG2-01 plate 1 B03 (treatment) predicted 1138 (0.42)
#: right true 1138"): rasterised before the window is used (~0.3 s), so that the first
#: well's frame does not do it
CAPTION_CHARACTERS = "".join(dict.fromkeys("0123456789 ABCDEFGHIJKLMNOP-()platetrmnsdicugwohf.|_"))
#: every printable character, the caption's first
CANVAS_CHARACTERS = "".join(dict.fromkeys(
    CAPTION_CHARACTERS + "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")))

TICK_INTERVAL_MS = 25  # one glyph (5-15 ms of rasterising) per tick


def canvas_font(viewer: Any) -> Any:
    """The texture font napari's canvas text visuals share (None if napari's internals moved).

    napari keeps one Qt font manager per viewer; every Text visual of the canvas uses the
    canvas's font face from it, so warming that font warms them all.
    """
    try:
        return canvas_text_font(viewer)
    except (AttributeError, RuntimeError) as exc:
        log.info("no canvas font to warm up: %s", exc)
        return None


class GlyphWarmup(QObject):
    """Rasterise ``characters`` into ``viewer``'s canvas font, one per timer tick."""

    def __init__(self, viewer: Any, characters: str = CANVAS_CHARACTERS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._font = canvas_font(viewer)
        self._pending = list(dict.fromkeys(characters))
        self._timer = QTimer(self)
        # spaced ticks: a tick right after a long frame would lengthen that stall
        self._timer.setInterval(TICK_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)

    @property
    def done(self) -> bool:
        return self._font is None or not self._pending

    def start(self, now: str = "", idle_after_ms: int = 0) -> None:
        """Rasterise ``now``'s characters at once, the others in idle ticks from
        ``idle_after_ms`` on (after the first screen has opened, not during it)."""
        for char in dict.fromkeys(now):
            if char in self._pending:
                self._pending.remove(char)
                self._load(char)
        if not self.done:
            QTimer.singleShot(idle_after_ms, self._timer, self._timer.start)

    def _load(self, char: str) -> None:
        if self._font is None:
            return
        try:
            self._font[char]  # QtTextureFont loads the glyph on first access
        except Exception as exc:  # a glyph the font cannot draw is drawn as napari does
            log.debug("cannot warm glyph %r: %s", char, exc)

    def _tick(self) -> None:
        if self._pending:
            self._load(self._pending.pop(0))
        if self.done:
            self._timer.stop()


WARM_DRAW_MS = 150  # draw_once_invisibly keeps the layers drawn (at zero opacity) this long


def draw_once_invisibly(layers: Sequence[Any], visible_after: Callable[[Any], bool],
                        context: QObject, done: Callable[[], None] | None = None) -> None:
    """Draw hidden ``layers`` for a moment at zero opacity, then give each the visibility
    ``visible_after(layer)`` says: a layer's first frame compiles its shader programs, which
    takes software OpenGL 100+ ms, better spent at start than on the user's first click.
    The timers die with ``context`` (a dock), so a closed viewer is left alone; ``done()``
    follows the last layer's restore."""
    layers = [layer for layer in layers if layer is not None and not layer.visible]
    for layer in layers:
        layer.opacity = 0.0
        layer.visible = True

    def restore() -> None:  # one layer per event-loop turn: each costs napari a thumbnail
        if not layers:
            if done is not None:
                done()
            return
        layer = layers.pop(0)
        layer.visible = visible_after(layer)
        layer.opacity = 1.0
        QTimer.singleShot(0, context, restore)

    QTimer.singleShot(WARM_DRAW_MS, context, restore)


#: modules imported lazily on the way to the first well (PyOpenGL's list arrays in the first
#: frame, the screen readers in the opener's worker): importing them at start keeps ~40 ms
#: of module loading (and the import lock, which a worker holds) out of the first frames
LAZY_MODULES = ("OpenGL.arrays.lists", "PIL.PngImagePlugin", "deepnoise_engine.screen.rxrx1",
                "deepnoise_engine.screen.tiff", "deepnoise_engine.screen.pack_cache")


def import_lazy_modules() -> None:
    for name in LAZY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # another OpenGL binding: nothing to warm
            log.debug("cannot pre-import %s: %s", name, exc)
