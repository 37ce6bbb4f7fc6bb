"""A session's profile: every recorded event as one row, read from the session's journal alone.

Task rows come from the journal's ``events`` table (every update the client applied: its state, where and when it
happened, and for updates from a worker the worker — the *slot* — that ran it); the other rows from its ``profile``
table (pilot states, bootstrap steps, agent events such as workers started and stopped, clock offsets; see
:mod:`scalems_like.client.profiling`). Times stamped by an agent (or its workers and bootstrap) are corrected by that
pilot's clock offset, so every ``time`` is on the client's clock; ``stamped`` keeps the time as it was stamped.

Columns (:data:`COLUMNS`): ``time``, ``stamped``, ``component`` (task, pilot, bootstrap, agent, worker, scheduler,
clock), ``event`` (a state, a bootstrap step's started/done/failed, start/stop/lost, ...), ``uid`` (of the task,
pilot or worker), ``name`` (the task's name, the bootstrap step), ``pilot``, ``where`` (host or node), ``slot`` (the
worker that ran a task), ``cores``, ``attempt``, ``detail`` (a reason, an exit code, ...). Rows are in time order.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgpack

from scalems_like.errors import ConfigError
from scalems_like.record.journal import Journal

Row = dict[str, Any]
COLUMNS = ("time", "stamped", "component", "event", "uid", "name", "pilot", "where", "slot", "cores", "attempt",
           "detail")
_PILOT_COMPONENTS = frozenset({"pilot", "clock", "agent", "bootstrap"})
"""Client-clock profile rows whose uid is a pilot's."""


def open_journal(session_uid: str) -> Journal:
    """The journal of ``session_uid``; a missing one is a ConfigError naming the session and the path."""
    try:
        return Journal.open(session_uid)
    except FileNotFoundError as error:
        raise ConfigError(f"session {session_uid!r}: {error}") from None


def load_rows(session_uid: str) -> list[Row]:
    """Every profile row of a session, read from its journal (its client may be gone, or still running)."""
    journal = open_journal(session_uid)
    try:
        return build_rows(journal.connection, journal.profile())
    finally:
        journal.connection.close()


def task_count(session_uid: str) -> int:
    """How many tasks the session holds (some may have no row yet: NEW, never sent)."""
    journal = open_journal(session_uid)
    try:
        return int(journal.connection.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
    finally:
        journal.connection.close()


def build_rows(connection: sqlite3.Connection, profile: Iterable[Sequence[Any]]) -> list[Row]:
    profile = list(profile)
    offsets = clock_offsets(profile)
    rows = list(_task_rows(connection, offsets))
    for when, clock, component, where, event, uid, name, detail in profile:
        pilot = clock if clock != "client" else uid if component in _PILOT_COMPONENTS else ""
        rows.append(_row(when + offsets.get(clock, 0.0), when, component, event, uid, name, pilot, where,
                         detail=detail))
    rows.sort(key=lambda row: row["time"])
    return rows


def clock_offsets(profile: Iterable[Sequence[Any]]) -> dict[str, float]:
    """Pilot uid → seconds to add to its agent's times (the smallest receipt - send difference recorded)."""
    offsets: dict[str, float] = {}
    for _when, _clock, component, _where, event, uid, _name, detail in profile:
        if component == "clock" and event == "offset":
            offsets[uid] = min(float(detail), offsets.get(uid, float("inf")))
    return offsets


def _task_rows(connection: sqlite3.Connection, offsets: dict[str, float]) -> Iterable[Row]:
    described: dict[str, tuple[str, int]] = {}
    for uid, packed in connection.execute("SELECT uid, wire FROM tasks"):
        wire = msgpack.unpackb(packed, raw=False, strict_map_key=False)
        described[uid] = (wire.get("name") or "", int(wire.get("cores") or 1))
    pilots: dict[str, str] = {}
    for (packed,) in connection.execute('SELECT "update" FROM events ORDER BY seq'):
        update = msgpack.unpackb(packed, raw=False, strict_map_key=False)
        uid, host = update["uid"], str(update.get("host") or "")
        if "pilot" in update:  # client-side updates say where the task was sent (None: back to NEW)
            pilots[uid] = update["pilot"] or ""
        pilot = pilots.get(uid, "")
        stamped = float(update.get("time", 0.0))
        offset = 0.0 if host == "client" else offsets.get(pilot, 0.0)
        name, cores = described.get(uid, ("", 1))
        yield _row(stamped + offset, stamped, "task", update["state"], uid, name, pilot, host,
                   slot=update.get("worker", ""), cores=cores, attempt=update.get("attempt", 0),
                   detail=update.get("reason") or "")


def _row(when: float, stamped: float, component: str, event: str, uid: str, name: str, pilot: str, where: str, *,
         slot: str = "", cores: int | None = None, attempt: int | None = None, detail: str = "") -> Row:
    return {"time": when, "stamped": stamped, "component": component, "event": event, "uid": uid, "name": name,
            "pilot": pilot, "where": where, "slot": slot, "cores": cores, "attempt": attempt, "detail": detail}


def as_frame(rows: list[Row]) -> Any:
    """A pandas DataFrame of the rows when pandas is installed, else the rows themselves."""
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows, columns=list(COLUMNS))


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

