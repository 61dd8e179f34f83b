"""The review queue (Qt-free): which wells deserve a second look."""

from __future__ import annotations

from deepnoise_app.models.review_queue import build_queue


def test_queue_without_models_or_screen(prediction_frame, small_screen) -> None:
    plate = next(small_screen.plates())
    name = plate.used_wells()[2].name
    queue = build_queue({plate.key: prediction_frame(plate, {name: 0.1})})
    assert queue.iloc[0]["well"] == name and not queue["models disagree"].any()
    assert queue["low confidence"].sum() == 1
