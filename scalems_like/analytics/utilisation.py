"""Pure arithmetic on task intervals: busy cores over time, utilisation, and where a pilot's core-time went.

An :class:`Interval` is one attempt of a task on one worker slot, from RUNNING to the state that ended it. A
pilot's core-time (its cores * the time from the start of its bootstrap to its end) splits into **bootstrap**
(until its agent connected), **busy** (the task intervals' cores * duration, while it was active), **idle** (the
rest of the active time) and **shutdown** (from the first request to stop, or the agent's notice that it stops,
to the pilot's end).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence


@dataclasses.dataclass(frozen=True)
class Interval:
    """One task attempt on one slot: [start, end) on the client's clock."""

    start: float
    end: float
    slot: str
    pilot: str = ""
    cores: int = 1
    uid: str = ""
    name: str = ""
    state: str = ""
    """The state that ended the interval (DONE, FAILED, CANCELED; QUEUED for a retry; RUNNING if still open)."""

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


def busy_steps(intervals: Iterable[Interval]) -> list[tuple[float, int]]:
    """The busy-core step function: (time, busy cores from then on), one point per time where it changes."""
    changes: dict[float, int] = {}
    for interval in intervals:
        if interval.end > interval.start:
            changes[interval.start] = changes.get(interval.start, 0) + interval.cores
            changes[interval.end] = changes.get(interval.end, 0) - interval.cores
    steps: list[tuple[float, int]] = []
    busy = 0
    for when in sorted(changes):
        if changes[when]:
            busy += changes[when]
            steps.append((when, busy))
    return steps


def busy_core_seconds(intervals: Iterable[Interval], start: float, end: float) -> float:
    """Core-seconds the intervals occupy within [start, end)."""
    return sum(max(0.0, min(i.end, end) - max(i.start, start)) * i.cores for i in intervals)


def utilisation(intervals: Sequence[Interval], cores: int, start: float, end: float) -> float:
    """Busy core-seconds / available core-seconds within [start, end) (0 for an empty window)."""
    available = cores * (end - start)
    return busy_core_seconds(intervals, start, end) / available if available > 0 else 0.0


def utilisation_curve(intervals: Sequence[Interval], cores: int, start: float,
                      end: float) -> tuple[list[float], list[float]]:
    """(times, busy fraction from each time on) over [start, end], for a step plot (``where="post"``)."""
    times, fractions = [start], [0.0]
    for when, busy in busy_steps(intervals):
        if when <= start:
            fractions[0] = busy / cores if cores else 0.0
        elif when < end:
            times.append(when)
            fractions.append(busy / cores if cores else 0.0)
    times.append(end)
    fractions.append(fractions[-1])
    return times, fractions


def time_split(intervals: Sequence[Interval], cores: int, bootstrapping: float, active: float | None,
               shutdown: float | None, end: float) -> dict[str, float]:
    """The pilot's core-seconds: bootstrap, busy, idle, shutdown (they add up to cores * (end - bootstrapping)).

    ``active`` None: the agent never connected (all of it is bootstrap); ``shutdown`` None: nobody asked it to
    stop before it ended (walltime, failure).
    """
    if active is None:
        return {"bootstrap": cores * max(0.0, end - bootstrapping), "busy": 0.0, "idle": 0.0, "shutdown": 0.0}
    active = min(max(active, bootstrapping), end)
    stop = end if shutdown is None else min(max(shutdown, active), end)
    busy = busy_core_seconds(intervals, active, stop)
    return {"bootstrap": cores * (active - bootstrapping), "busy": busy,
            "idle": max(0.0, cores * (stop - active) - busy), "shutdown": cores * (end - stop)}
