"""From profile rows to what the plots and the summary measure: task intervals on slots, and pilot phases.

A *slot* is a worker of a pilot (one per core; its uid is ``PILOT.worker.N``): it runs one task at a time, so a
timeline has one row per slot. A task of several cores runs on one worker and holds others idle; its interval
counts all its cores for utilisation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from scalems_like.analytics.utilisation import Interval
from scalems_like.states import PILOT_FINAL, PilotState, TaskState


@dataclasses.dataclass
class PilotPhases:
    """When a pilot was submitted, began bootstrapping, became active, was asked to stop, and ended."""

    uid: str
    state: str = PilotState.NEW.value
    cores: int = 0
    submitted: float | None = None
    bootstrapping: float | None = None
    active: float | None = None
    shutdown: float | None = None
    end: float | None = None
    failure: str = ""
    slots: list[str] = dataclasses.field(default_factory=list)
    steps: list[tuple[float, str, str]] = dataclasses.field(default_factory=list)
    """Bootstrap events: (time, step, started/done/failed)."""


def task_intervals(rows: Sequence[dict[str, Any]], until: float | None = None) -> list[Interval]:
    """Each task attempt that ran, from its RUNNING row to the next row of that task; one still open ends at
    ``until`` (default: the last row's time)."""
    until = max((row["time"] for row in rows), default=0.0) if until is None else until
    running: dict[str, dict[str, Any]] = {}
    intervals: list[Interval] = []
    for row in rows:
        if row["component"] != "task":
            continue
        started = running.pop(row["uid"], None)
        if started is not None:
            intervals.append(_interval(started, max(row["time"], started["time"]), row["event"]))
        if row["event"] == TaskState.RUNNING:
            running[row["uid"]] = row
    intervals.extend(_interval(row, max(until, row["time"]), TaskState.RUNNING.value) for row in running.values())
    intervals.sort(key=lambda interval: interval.start)
    return intervals


def _interval(row: dict[str, Any], end: float, state: str) -> Interval:
    return Interval(row["time"], end, row["slot"] or f"{row['pilot']}.?", row["pilot"], int(row["cores"] or 1),
                    row["uid"], row["name"], state)


def pilot_phases(rows: Sequence[dict[str, Any]], intervals: Sequence[Interval] = ()) -> dict[str, PilotPhases]:
    """Every pilot's phases, by uid, from the pilot, agent, bootstrap and worker rows (and the slots that ran
    ``intervals``)."""
    phases: dict[str, PilotPhases] = {}
    for row in rows:
        if row["component"] in ("pilot", "agent", "bootstrap", "worker") and row["pilot"]:
            _note(phases.setdefault(row["pilot"], PilotPhases(row["pilot"])), row)
    for interval in intervals:
        pilot = phases.setdefault(interval.pilot, PilotPhases(interval.pilot))
        if interval.slot not in pilot.slots:
            pilot.slots.append(interval.slot)
    for pilot in phases.values():
        pilot.slots.sort(key=_slot_order)
        pilot.cores = pilot.cores or len(pilot.slots)
        if pilot.bootstrapping is None and pilot.steps:
            pilot.bootstrapping = pilot.steps[0][0]
    return phases


def _note(pilot: PilotPhases, row: dict[str, Any]) -> None:
    component, event, when = row["component"], row["event"], row["time"]
    if component == "bootstrap":
        pilot.steps.append((when, row["name"], event))
    elif component == "worker" and event == "start" and row["uid"] not in pilot.slots:
        pilot.slots.append(row["uid"])
    elif component == "agent" and event == "hello":
        pilot.cores = sum(int(node[1]) for node in json.loads(row["detail"] or "[]"))
    elif component == "pilot":
        if event in ("shutdown_requested", "agent_stopping"):
            pilot.shutdown = when if pilot.shutdown is None else min(pilot.shutdown, when)
            return
        pilot.state = event
        if event == PilotState.SUBMITTED:
            pilot.submitted = when
        elif event == PilotState.BOOTSTRAPPING:
            pilot.bootstrapping = when
        elif event == PilotState.ACTIVE:
            pilot.active = when
        elif event in PILOT_FINAL:
            pilot.end, pilot.failure = when, row["detail"]


def _slot_order(slot: str) -> tuple[str, int, str]:
    """Workers by number (worker.2 before worker.10)."""
    head, _, tail = slot.rpartition(".")
    return (head, int(tail), "") if tail.isdigit() else (slot, -1, slot)
