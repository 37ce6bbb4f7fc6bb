"""A session in numbers: tasks by final state, task times, pilot utilisation and time split, the slowest tasks,
failures grouped by reason. :func:`session_summary` needs only the session's journal (its client may be gone);
:func:`summary_tables` renders the result for a terminal (``scalems-like run``, ``status``, ``profile``).

The summary is a JSON-able dict::

    session, tasks (count), states {state: count}, task_seconds {total, median, max}, makespan (first
    submission to last final state), utilisation (busy core-seconds / active core-seconds of every pilot),
    pilots [{uid, state, cores, queued, utilisation, split {bootstrap, busy, idle, shutdown}, failure}],
    slowest [{uid, name, seconds, state, slot}], failures [{reason, state, count, example, example_reason if the
    group holds several reasons alike: ``bad input N``}]
"""

from __future__ import annotations

import collections
import re
import statistics
import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from scalems_like.analytics.intervals import PilotPhases, pilot_phases, task_intervals
from scalems_like.analytics.utilisation import Interval, busy_core_seconds, time_split
from scalems_like.record.client_lock import is_held
from scalems_like.record.journal import journal_path
from scalems_like.record.profile import Row, load_rows, task_count
from scalems_like.states import TASK_FINAL, TaskState

SLOWEST = 5
FAILURE_GROUPS = 10
STATE_ORDER = tuple(state.value for state in TaskState)


def session_summary(source: str | Sequence[Row], *, tasks: int | None = None) -> dict[str, Any]:
    """The summary of a session (its uid: read from its journal) or of profile rows already read.

    ``tasks``: how many tasks the session holds (tasks without any row count as NEW); read from the journal when
    ``source`` is a uid.
    """
    uid = source if isinstance(source, str) else None
    rows = load_rows(source) if isinstance(source, str) else list(source)
    if uid is not None and tasks is None:
        tasks = task_count(uid)
    last: dict[str, Row] = {}
    for row in rows:
        if row["component"] == "task":
            last[row["uid"]] = row
    states = collections.Counter(row["event"] for row in last.values())
    if tasks is not None and tasks > len(last):
        states[TaskState.NEW.value] += tasks - len(last)
    # a session a live client holds goes on: what runs has run until now (not until its last recorded event)
    now = time.time() if uid is not None and is_held(journal_path(uid).parent) else None
    intervals = task_intervals(rows, now)
    pilots = pilot_phases(rows, intervals)
    end = max((row["time"] for row in rows), default=0.0) if now is None else now
    return {
        "session": uid, "tasks": sum(states.values()),
        "states": {state: states[state] for state in STATE_ORDER if states.get(state)},
        "task_seconds": _task_seconds(intervals), "makespan": _makespan(rows, now),
        "utilisation": overall_utilisation(pilots.values(), intervals, end),
        "pilots": [_pilot_summary(pilot, intervals, end) for pilot in pilots.values()],
        "slowest": _slowest(intervals), "failures": _failures(last.values()),
    }


def _task_seconds(intervals: Sequence[Interval]) -> dict[str, float]:
    per_task: dict[str, float] = collections.defaultdict(float)
    for interval in intervals:
        per_task[interval.uid] += interval.seconds
    seconds = list(per_task.values())
    return {"total": sum(seconds), "median": statistics.median(seconds) if seconds else 0.0,
            "max": max(seconds, default=0.0)}


def _makespan(rows: Sequence[Row], now: float | None = None) -> float:
    """First submission to the last final state (to ``now`` for a live session)."""
    submitted = [row["time"] for row in rows if row["component"] == "task" and row["event"] == TaskState.SUBMITTED]
    finished = [row["time"] for row in rows if row["component"] == "task" and row["event"] in TASK_FINAL]
    if now is not None and submitted:
        return max(0.0, now - min(submitted))
    return max(0.0, max(finished) - min(submitted)) if submitted and finished else 0.0


def _window(pilot: PilotPhases, end: float) -> tuple[float, float] | None:
    """The pilot's active window (ACTIVE to the first stop request, or its end)."""
    if pilot.active is None:
        return None
    stop = min(x for x in (pilot.shutdown, pilot.end, end) if x is not None)
    return pilot.active, max(stop, pilot.active)


def overall_utilisation(pilots: Any, intervals: Sequence[Interval], end: float) -> float | None:
    """Busy core-seconds / core-seconds of every pilot's active window (None if no pilot was active)."""
    busy = available = 0.0
    for pilot in pilots:
        window = _window(pilot, end)
        if window is not None and pilot.cores:
            mine = [interval for interval in intervals if interval.pilot == pilot.uid]
            busy += busy_core_seconds(mine, *window)
            available += pilot.cores * (window[1] - window[0])
    return busy / available if available > 0 else None


def _pilot_summary(pilot: PilotPhases, intervals: Sequence[Interval], end: float) -> dict[str, Any]:
    mine = [interval for interval in intervals if interval.pilot == pilot.uid]
    window = _window(pilot, end)
    started = pilot.bootstrapping if pilot.bootstrapping is not None else pilot.active
    split = None
    if started is not None and pilot.cores:
        split = time_split(mine, pilot.cores, started, pilot.active, pilot.shutdown, pilot.end or end)
    active = window is not None and window[1] > window[0] and pilot.cores
    return {
        "uid": pilot.uid, "state": pilot.state, "cores": pilot.cores,
        "queued": (started - pilot.submitted) if started is not None and pilot.submitted is not None else None,
        "utilisation": busy_core_seconds(mine, *window) / (pilot.cores * (window[1] - window[0]))
        if active and window else None,
        "split": split, "failure": pilot.failure.splitlines()[0] if pilot.failure else "",
    }


def _slowest(intervals: Sequence[Interval]) -> list[dict[str, Any]]:
    longest = sorted(intervals, key=lambda interval: interval.seconds, reverse=True)[:SLOWEST]
    return [{"uid": i.uid, "name": i.name, "seconds": i.seconds, "state": i.state, "slot": i.slot} for i in longest]


QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_shape(reason: str) -> str:
    """A reason with its values normalised: quoted values become ``'…'``, numbers ``N`` (``bad input 0``,
    ``bad input 1`` and ``bad input 2`` are one shape: ``bad input N``)."""
    return NUMBER.sub("N", QUOTED.sub("'…'", reason))


def _failures(last: Any) -> list[dict[str, Any]]:
    """Tasks not DONE grouped by the shape of their reason (:func:`reason_shape`) and state, the largest first.

    A group whose tasks give one same reason shows it as it is; a group of several reasons alike shows their
    shape, with one of them as ``example_reason`` (the reason of the ``example`` task)."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = collections.defaultdict(list)
    for row in last:
        if row["event"] in (TaskState.FAILED, TaskState.CANCELED):
            reason = (row["detail"] or "(no reason)").splitlines()[0][:200]
            groups[(reason_shape(reason), row["event"])].append((row["uid"], reason))
    ordered = sorted(groups.items(), key=lambda item: len(item[1]), reverse=True)[:FAILURE_GROUPS]
    failures = []
    for (shape, state), members in ordered:
        example, example_reason = members[0]
        alike = len({reason for _uid, reason in members}) > 1
        failures.append({"reason": shape if alike else example_reason, "state": state, "count": len(members),
                         "example": example, **({"example_reason": example_reason} if alike else {})})
    return failures


# -- for a terminal -----------------------------------------------------------------------------------------
def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """Rich tables of a summary: tasks by state, times, pilots, the slowest tasks, failures by reason (the last
    three only when there is something to show)."""
    states = Table()
    states.add_column("state")
    states.add_column("tasks", justify="right")
    for state, count in summary["states"].items():
        states.add_row(state, str(count))
    tables = [states, _times_table(summary)]
    if summary["pilots"]:
        tables.append(_pilots_table(summary["pilots"]))
    if summary["slowest"]:
        slowest = Table(title="slowest tasks")
        for column in ("task", "name", "seconds", "state", "slot"):
            slowest.add_column(column, justify="right" if column == "seconds" else "left")
        for item in summary["slowest"]:
            slowest.add_row(item["uid"], item["name"], f"{item['seconds']:.3f}", item["state"], item["slot"])
        tables.append(slowest)
    if summary["failures"]:
        failures = Table(title="not DONE, by reason")
        failures.add_column("tasks", justify="right")
        failures.add_column("reason")
        for item in summary["failures"]:
            example = f" (e.g. {item['example_reason']})" if item.get("example_reason") else ""
            failures.add_row(str(item["count"]), item["reason"] + example)
        tables.append(failures)
    return tables


def _times_table(summary: dict[str, Any]) -> Table:
    seconds = summary["task_seconds"]
    times = Table(title="times", show_header=False)
    times.add_column("measure")
    times.add_column("value", justify="right")
    times.add_row("task time, total", f"{seconds['total']:.2f} s")
    times.add_row("task time, median", f"{seconds['median']:.3f} s")
    times.add_row("makespan (first submit to last end)", f"{summary['makespan']:.2f} s")
    if summary["utilisation"] is not None:
        times.add_row("pilot utilisation (busy cores / cores)", f"{summary['utilisation']:.1%}")
    return times


def _pilots_table(pilots: list[dict[str, Any]]) -> Table:
    table = Table(title="pilots: where the core-time went",
                  caption="shares of cores * (end - bootstrap start); used: busy cores / cores while active")
    for column in ("pilot", "state", "cores", "queued", "boot", "busy", "idle", "stop", "used"):
        table.add_column(column, justify="left" if column in ("pilot", "state") else "right", no_wrap=True)
    for pilot in pilots:
        split = pilot["split"] or {}
        whole = sum(split.values())
        shares = [f"{split[part] / whole:.0%}" if whole else "" for part in ("bootstrap", "busy", "idle", "shutdown")
                  ] if split else ["", "", "", ""]
        queued = "" if pilot["queued"] is None else f"{pilot['queued']:.2f} s"
        used = "" if pilot["utilisation"] is None else f"{pilot['utilisation']:.1%}"
        table.add_row(pilot["uid"], pilot["state"], str(pilot["cores"]), queued, *shares, used)
    return table
