"""Flow control between a client and its agent: how many unfinished tasks the agent takes. Pure, no I/O.

The agent announces a *task window* (:class:`~scalems_like.protocol.messages.TaskWindow`); the client keeps its
tasks sent to that agent and not yet final at or below it (its *credit* is the window minus those), and the other
tasks wait on the client. A final update returns its task's credit, so the agent holds a bounded number of tasks
per worker whatever the number submitted, and its memory does not grow with it.

The window keeps every worker busy across the client's round trip and the agent's memory bounded at any size: one
task per worker (:data:`MIN_PER_WORKER`: the one it runs) plus a queue *ahead* of about :data:`WINDOW_SECONDS` of
work at the observed mean task duration, at most :data:`MAX_PER_WORKER` per worker (tiny tasks) and at most
:data:`CEILING` in all; before any task ended, :data:`INITIAL_PER_WORKER` per worker ahead, within the same
ceiling (a small workflow goes to the agent at once, and runs on while its client is away).

Why one per worker and a bounded queue, not a multiple per worker: the master holds about 2.8 KB per task it
holds (the task, its QUEUED update, its uid in the sets that follow it; measured by accepting a window of tasks
into a master of 256 nodes). At 4 096 nodes of 128 workers a floor of 2 per worker meant 1 048 576 tasks held
(about 2.9 GB: the whole of a million-task run) and 16 per worker before the first end meant 8.4 million (every
task sent at once); one per worker is the least that keeps every worker busy, and the queue ahead, shared by all
workers, gives each its next task when its current one ends. At 4 096 x 128 that is 540 672 tasks, about 1.5 GB:
above the 1 GB aimed at (``python benchmarks/scale.py --nodes 4096 --cores-per-node 128``; docs/performance.md,
*Scale*, says what else the master holds there).

So the window is also bounded by what the agent *starts*: by Little's law, tasks started at a rate ``r`` that last
``d`` seconds are ``r * d`` running at a time; the window is at most :data:`RATE_FACTOR` times ``r * (d +``
:data:`WINDOW_SECONDS` ``)`` (the running ones and a second's worth ahead), and at least :data:`FLOOR` (the same
before any task started). Twice what the current rate needs lets the rate double from one measure to the next
(:class:`StartRate`, once a second), so a pilot of long tasks fills its cores within a few seconds (a slow start:
65 536, 131 072, 262 144...), while tasks that end at once are held no more than what the master can start: at
4 096 x 128 cores and ~35 000 tasks/s about 70 000 tasks, not 540 672. Where ``r * d`` reaches the workers (long
tasks) the bound is above the worker-based window and changes nothing.
"""

from __future__ import annotations

import math

WINDOW_SECONDS = 1.0
"""Seconds of work the queue ahead of the workers aims at."""
MIN_PER_WORKER = 1
"""Tasks per worker the window holds at least: the one it runs."""
INITIAL_PER_WORKER = 16
"""Tasks per worker ahead before any task ended (within :data:`CEILING`)."""
MAX_PER_WORKER = 4096
CEILING = 16384
"""Tasks the queue ahead holds at most, whatever the number of workers."""
FLOOR = 65536
"""The least the start rate bounds the window to (and the bound before any task started)."""
RATE_FACTOR = 2.0
"""The window allows this many times the tasks in flight at the current start rate (room for the rate to grow)."""
RATE_DECAY = 0.8
"""Per measure, the start rate kept falls at most to this share of the last (a pass of the master's own that
started nothing, or a pause of the client, does not shut the window at once)."""
CHANGE = 1.25
"""A new window is announced when it differs from the last one by this factor or more."""


def task_window(workers: int, mean_duration: float | None, start_rate: float = 0.0) -> int:
    """The tasks an agent of ``workers`` workers takes at once, with tasks lasting ``mean_duration`` s (None:
    none has ended yet) and started at ``start_rate`` per second (0: none measured yet): one running per worker
    and a bounded queue ahead of them, within what that start rate keeps busy (and at least :data:`FLOOR`)."""
    workers = max(1, workers)
    if mean_duration is None:
        per_worker = INITIAL_PER_WORKER
    else:
        per_worker = min(MAX_PER_WORKER, math.ceil(WINDOW_SECONDS / max(mean_duration, 1e-6)))
    by_workers = workers * MIN_PER_WORKER + min(CEILING, workers * per_worker)
    by_rate = math.ceil(RATE_FACTOR * start_rate * ((mean_duration or 0.0) + WINDOW_SECONDS))
    return min(by_workers, max(FLOOR, by_rate))


class StartRate:
    """Tasks started per second, measured by the master once a second (:meth:`measure`), as a peak that decays by
    at most :data:`RATE_DECAY` per measure."""

    __slots__ = ("rate", "since", "started")

    def __init__(self, now: float) -> None:
        self.rate = 0.0
        self.started = 0
        """Tasks started since the last measure (the master adds to it)."""
        self.since = now

    def measure(self, now: float) -> float:
        """The rate now (and a new measuring interval from ``now``)."""
        elapsed = now - self.since
        if elapsed > 0:
            self.rate = max(self.started / elapsed, self.rate * RATE_DECAY)
            self.started, self.since = 0, now
        return self.rate


def worth_announcing(window: int, announced: int) -> bool:
    """A window differs enough from the one ``announced`` to tell the client (0: none was)."""
    return announced == 0 or window >= announced * CHANGE or window * CHANGE <= announced
