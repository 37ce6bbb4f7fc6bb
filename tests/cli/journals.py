"""Journals of sessions made without running them: what the CLI reads, with known contents."""

from __future__ import annotations

from scalems_like.record.journal import Journal


def closed_session(uid: str, counts: dict[str, int], reasons: list[str] | None = None) -> None:
    """A closed interactive session's journal with tasks that ended as ``counts`` says; its FAILED tasks give
    ``reasons`` in turn (default: ``exited with code 3``)."""
    journal = Journal.create(uid, {"uid": uid, "created": "2026-11-23 15:00:00"})
    states = [state for state, count in counts.items() for _ in range(count)]
    wires = [(f"task.{number:06d}", number, {"uid": f"task.{number:06d}", "kind": "executable", "cores": 1})
             for number in range(len(states))]
    failed = iter(reasons or [])
    updates = [{"uid": f"task.{number:06d}", "state": state, "time": 100.0 + number, "host": "client",
                **({"reason": next(failed, "exited with code 3")} if state == "FAILED" else {})}
               for number, state in enumerate(states)]
    journal.commit([("tasks", wires), ("events", updates), ("session", ("state", "closed"))])
    journal.connection.close()
