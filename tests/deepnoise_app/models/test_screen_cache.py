"""PerScreen: one value per screen object, computed once, only the newest screens kept."""

from __future__ import annotations

import threading
from pathlib import Path

from deepnoise_app.models.screen_cache import PerScreen
from deepnoise_engine.screen.model import Screen


def _screen(name: str) -> Screen:
    return Screen(root=Path("/nowhere") / name, layout="rxrx1", channels=[1], image_size=None)


def test_computed_once_per_screen_object_and_bounded() -> None:
    calls: list[str] = []

    def factory(screen: Screen) -> str:
        calls.append(screen.root.name)
        return screen.root.name.upper()

    cache = PerScreen(factory, keep=2)
    a, b, c = _screen("a"), _screen("b"), _screen("c")
    assert cache.get(a) == "A" and cache.get(a) == "A"
    assert calls == ["a"]
    # an equal but distinct screen object (a reopened folder) gets its own value
    assert cache.get(_screen("a")) == "A" and calls == ["a", "a"]
    cache.get(b)
    cache.get(c)  # a is dropped: the cache never keeps more than two screens alive
    cache.get(a)
    assert calls == ["a", "a", "b", "c", "a"]


def test_threads_share_one_value() -> None:
    gate = threading.Barrier(4)
    made: list[object] = []

    def factory(_screen: Screen) -> object:
        value = object()
        made.append(value)
        return value

    cache = PerScreen(factory)
    screen = _screen("s")
    got: list[object] = []

    def worker() -> None:
        gate.wait()
        got.append(cache.get(screen))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(v) for v in got}) == 1  # racing threads all get the stored value
    assert got[0] is cache.get(screen)
