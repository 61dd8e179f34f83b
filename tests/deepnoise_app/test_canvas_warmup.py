"""Canvas warm-up in a real napari viewer: glyphs rasterised ahead, layers drawn once."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QObject

from deepnoise_app.canvas_warmup import (
    CAPTION_CHARACTERS,
    WARM_DRAW_MS,
    GlyphWarmup,
    canvas_font,
    draw_once_invisibly,
)

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


def test_glyphs_are_rasterised_now_and_in_idle_ticks(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    font = canvas_font(viewer)
    assert font is not None  # napari's font manager is where the warm-up expects it
    warmup = GlyphWarmup(viewer, characters="AB7xyz")
    glyphs = font._glyphs  # napari's glyph cache: what the warm-up fills
    assert "x" not in glyphs
    warmup.start(now="AB")
    assert {"A", "B"} <= set(glyphs)  # at once
    qtbot.waitUntil(lambda: warmup.done, timeout=5_000)
    assert {"7", "x", "y", "z"} <= set(glyphs)  # in idle ticks


def test_caption_characters_cover_a_caption() -> None:
    caption = "HEPG2-01 plate 1 B03 (treatment) predicted 1138 (0.42) right true 1138"
    assert set(caption) <= set(CAPTION_CHARACTERS)


def test_draw_once_invisibly_restores_visibility_and_opacity(make_napari_viewer,
                                                             qtbot) -> None:
    viewer = make_napari_viewer()
    keep_hidden = viewer.add_image(np.zeros((4, 4)), visible=False)
    show_after = viewer.add_image(np.zeros((4, 4)), visible=False)
    context = QObject()
    draw_once_invisibly([keep_hidden, show_after], lambda layer: layer is show_after, context)
    assert keep_hidden.visible and keep_hidden.opacity == 0.0  # drawn, invisibly
    qtbot.wait(WARM_DRAW_MS + 200)
    assert not keep_hidden.visible and keep_hidden.opacity == 1.0
    assert show_after.visible and show_after.opacity == 1.0
