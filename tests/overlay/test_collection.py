"""The master's full garbage collections run on its own schedule (the real collector: no stand-in)."""

from __future__ import annotations

import gc
import weakref

from scalems_like.overlay.collection import NEVER, FullCollections


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def old_garbage_cycle() -> weakref.ref[Node]:
    """A reference cycle that reached the oldest generation while reachable, then became garbage."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    gc.collect(1)  # (survivors of the young generations move to the oldest)
    return weakref.ref(first)


def test_full_collections_leave_pythons_schedule_and_run_on_the_masters() -> None:
    before = gc.get_threshold()
    collections = FullCollections(interval=60.0)
    collections.start(now=100.0)
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
        cycle = old_garbage_cycle()
        gc.collect(1)  # a young collection does not reach it
        assert cycle() is not None
        assert not collections.handle(now=159.0) and cycle() is not None  # (the interval has not passed)
        assert collections.handle(now=160.0) and cycle() is None and collections.collections == 1
        assert not collections.handle(now=161.0)
    finally:
        collections.stop()
    assert gc.get_threshold() == before


def test_a_collector_never_started_changes_nothing() -> None:
    before = gc.get_threshold()
    collections = FullCollections(interval=0.0)
    assert not collections.handle(now=1e9)
    collections.stop()
    assert gc.get_threshold() == before and collections.collections == 0
