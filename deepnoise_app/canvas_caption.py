"""The caption at the top left of the napari canvas (well, call, truth; the mosaic's plate)."""

from __future__ import annotations

from typing import Any

from deepnoise_app.models.captions import wrap_caption
from deepnoise_app.napari_compat import text_overlay
from deepnoise_app.view_fit import canvas_width, view_fitter

CAPTION_FONT_SIZE = 10
_CAPTIONS: dict[int, str] = {}  # id(viewer) -> the caption before wrapping


def show_text(viewer: Any, text: str) -> None:
    """Put ``text`` on the canvas (top left, white, no box: the box costs a long frame
    without a GPU), wrapped to the canvas's width and re-wrapped when it is resized."""
    key = id(viewer)
    if key not in _CAPTIONS and canvas_width(viewer) is not None:
        view_fitter(viewer).on_resize(lambda: _show_wrapped(viewer, _CAPTIONS.get(key, "")))
    _CAPTIONS[key] = text
    _show_wrapped(viewer, text)


def _show_wrapped(viewer: Any, text: str) -> None:
    overlay = text_overlay(viewer)
    text = wrap_caption(text, canvas_width(viewer))
    wanted = {"position": "top_left", "box": False, "font_size": CAPTION_FONT_SIZE,
              "text": text, "visible": bool(text)}
    for key, value in wanted.items():  # each assignment redraws: only set what changed
        if getattr(overlay, key) != value:
            setattr(overlay, key, value)
