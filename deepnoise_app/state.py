"""One :class:`AppState` per napari viewer: every DeepNoise widget of a viewer shares it."""

from __future__ import annotations

import weakref
from typing import Any

from deepnoise_app.models.state import AppState
from deepnoise_app.napari_compat import unwrap_viewer

__all__ = ["AppState", "state_for"]

_STATES: dict[int, tuple[Any, AppState]] = {}


def state_for(viewer: Any) -> AppState:
    """The AppState shared by every DeepNoise widget of ``viewer`` (created on first use).

    napari hands plugin widgets a proxy of the viewer: it is unwrapped, so the app's docks
    and plugin widgets of the same viewer share one state.
    """
    viewer = unwrap_viewer(viewer)
    key = id(viewer)
    entry = _STATES.get(key)
    if entry is not None:
        ref, state = entry
        if ref() is viewer:
            return state
    state = AppState()
    try:
        ref = weakref.ref(viewer, lambda _r, key=key: _STATES.pop(key, None))
    except TypeError:  # not weak-referenceable: keep it alive with the state
        ref = lambda viewer=viewer: viewer  # noqa: E731
    _STATES[key] = (ref, state)
    return state
