"""The master's garbage collection: the young generations as Python schedules them, the full collection on the
master's own schedule.

Python's cyclic collector walks every live object it tracks in a *full* collection, and runs one whenever the
objects that survived into the oldest generation grew by a quarter. A master of 4 096 nodes of 128 workers holds
millions of such objects (a record per worker, the task window of about 540 000 tasks) and turns its window over
all the time: full collections came again and again, each walking them all, and the master's CPU per task grew
with the pilot's size (at 1 024 x 128 cores: 25.8 us per task against 20.6 with the collector off,
``benchmarks/scale.py``; docs/performance.md). What the master's loop creates per task holds no reference cycle, so
nearly all of that work found nothing.

:class:`FullCollections` takes the full collection out of Python's schedule (the young generations are still
collected as usual: a short-lived cycle is freed as before) and runs it from the master's loop at most once every
:data:`FULL_INTERVAL` seconds: a cycle that reached the oldest generation is freed within that time, and the cost of
walking every object is paid once per interval, not once per quarter of growth.
"""

from __future__ import annotations

import gc
import time

FULL_INTERVAL = 60.0
"""Seconds between two full collections run by the master's loop."""
NEVER = 2**30
"""A threshold for the oldest generation that Python's own schedule never reaches."""


class FullCollections:
    """Full collections on the master's schedule: :meth:`start` when its loop starts, :meth:`handle` once per pass,
    :meth:`stop` when it ends (the collector's thresholds are the process's: they are put back)."""

    def __init__(self, interval: float = FULL_INTERVAL) -> None:
        self.interval = interval
        self.saved: tuple[int, int, int] | None = None
        """The thresholds before :meth:`start` (None: not started, or stopped)."""
        self.last = 0.0
        self.collections = 0
        """Full collections run by :meth:`handle`."""

    def start(self, now: float | None = None) -> None:
        """Take the full collection out of Python's own schedule."""
        if self.saved is None:
            self.saved = gc.get_threshold()
            young, middle, _oldest = self.saved
            gc.set_threshold(young, middle, NEVER)
        self.last = time.monotonic() if now is None else now

    def handle(self, now: float | None = None) -> bool:
        """Run a full collection if the interval passed since the last one; returns whether it ran."""
        now = time.monotonic() if now is None else now
        if self.saved is None or now - self.last < self.interval:
            return False
        self.last = now
        gc.collect()
        self.collections += 1
        return True

    def stop(self) -> None:
        """Put Python's own schedule back."""
        if self.saved is not None:
            gc.set_threshold(*self.saved)
            self.saved = None
