"""Values computed once per open screen, in the opener's worker, then found by the docks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from deepnoise_engine.screen.model import Screen

T = TypeVar("T")


class PerScreen(Generic[T]):
    """``get(screen)`` computes ``factory(screen)`` once per screen object (thread-safe).

    Only the newest screens are kept (the open one and the one it replaces): a screen is
    a large object graph, which this must not keep alive.
    """

    def __init__(self, factory: Callable[[Screen], T], keep: int = 2) -> None:
        self._factory = factory
        self._keep = keep
        self._lock = threading.Lock()
        self._values: list[tuple[Screen, T]] = []  # newest last

    def get(self, screen: Screen) -> T:
        with self._lock:
            for known, value in self._values:
                if known is screen:
                    return value
        value = self._factory(screen)  # outside the lock: it may read files
        with self._lock:
            for known, existing in self._values:  # another thread was quicker
                if known is screen:
                    return existing
            self._values.append((screen, value))
            del self._values[: -self._keep]
        return value
