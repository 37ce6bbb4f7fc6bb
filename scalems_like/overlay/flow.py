"""Flow control between a client and its agent: how many unfinished tasks the agent takes. Pure, no I/O.

The agent announces a *task window* (:class:`~scalems_like.protocol.messages.TaskWindow`); the client keeps its
tasks sent to that agent and not yet final at or below it (its *credit* is the window minus those), and the other
tasks wait on the client. A final update returns its task's credit, so the agent holds a bounded number of tasks
per worker whatever the number submitted, and its memory does not grow with it.

The window keeps every worker busy across the client's round trip: about :data:`WINDOW_SECONDS` of work per
worker at the observed mean task duration, between :data:`MIN_PER_WORKER` (long tasks: the next one waits at the
master when one ends) and :data:`MAX_PER_WORKER` (tiny tasks) per worker, and at most :data:`CEILING` in all unless
the minimum per worker asks for more. Before any task ended, :data:`INITIAL_PER_WORKER` per worker (a small
workflow goes to the agent at once, and runs on while its client is away).
"""

from __future__ import annotations

import math

WINDOW_SECONDS = 1.0
"""Seconds of work per worker the window aims at."""
MIN_PER_WORKER = 2
INITIAL_PER_WORKER = 16
MAX_PER_WORKER = 4096
CEILING = 16384
"""Tasks a window holds at most, unless ``MIN_PER_WORKER`` times the workers is more."""
CHANGE = 1.25
"""A new window is announced when it differs from the last one by this factor or more."""


def task_window(workers: int, mean_duration: float | None) -> int:
    """The tasks an agent of ``workers`` workers takes at once, with tasks lasting ``mean_duration`` s (None:
    none has ended yet)."""
    if mean_duration is None:
        return max(1, workers) * INITIAL_PER_WORKER
    floor = max(1, workers) * MIN_PER_WORKER
    per_worker = min(MAX_PER_WORKER, max(MIN_PER_WORKER, math.ceil(WINDOW_SECONDS / max(mean_duration, 1e-6))))
    return max(floor, min(CEILING, workers * per_worker))


def worth_announcing(window: int, announced: int) -> bool:
    """A window differs enough from the one ``announced`` to tell the client (0: none was)."""
    return announced == 0 or window >= announced * CHANGE or window * CHANGE <= announced
