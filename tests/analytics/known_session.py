"""A known session, as its journal holds it: one 2-core pilot (submitted at 100, bootstrapping at 101, active
at 103, asked to stop at 113, DONE at 114) whose agent's clock is 5 s behind; t1 DONE on w.0 from 104 to 108, t2
FAILED on w.1 from 106 to 110, t3 FAILED on w.0 from 109 to 113 (both "exited with code 3"), t4 CANCELED before it
ran, t5 never sent (NEW). Utilisation of the active window: 12 busy core-seconds of 20."""

from __future__ import annotations

import json
from typing import Any

from scalems_like.record.journal import Journal

AGENT_BEHIND = 5.0
"""The agent's clock is 5 s behind the client's: agent-stamped times are corrected by +5."""


def agent(when: float) -> float:
    return when - AGENT_BEHIND


def task_updates() -> list[dict[str, Any]]:
    """t1 DONE after 4 s on w0, t2 and t3 FAILED (same reason) after 4 s each, t4 canceled before it ran."""
    updates = [{"uid": f"t{i}", "state": "SUBMITTED", "time": 103.5, "host": "client", "pilot": "pilot.0000",
                "sandbox": "/x"} for i in range(1, 5)]
    for uid, slot, start, end, state in (("t1", "w.0", 104, 108, "DONE"), ("t2", "w.1", 106, 110, "FAILED"),
                                         ("t3", "w.0", 109, 113, "FAILED")):
        updates.append({"uid": uid, "state": "RUNNING", "time": agent(start), "host": "n1", "worker": slot})
        updates.append({"uid": uid, "state": state, "time": agent(end), "host": "n1", "worker": slot,
                        **({"reason": "exited with code 3"} if state == "FAILED" else {})})
    updates.append({"uid": "t4", "state": "CANCELED", "time": 113.0, "host": "client", "reason": "session closed"})
    return updates


def profile_rows() -> list[tuple[Any, ...]]:
    pilot = "pilot.0000"
    return [
        (100.0, "client", "pilot", "client", "SUBMITTED", pilot, "", ""),
        (101.0, "client", "pilot", "batch", "BOOTSTRAPPING", pilot, "", ""),
        (agent(101.5), pilot, "bootstrap", "", "started", pilot, "environment", "0"),
        (agent(102.5), pilot, "bootstrap", "", "done", pilot, "environment", "0"),
        (agent(103.0), pilot, "agent", "n1", "hello", pilot, "", json.dumps([["n1", 2, 0]])),
        (agent(103.0), pilot, "pilot", "n1", "ACTIVE", pilot, "", ""),
        (103.1, "client", "clock", "client", "offset", pilot, "", repr(AGENT_BEHIND + 0.2)),
        (104.1, "client", "clock", "client", "offset", pilot, "", repr(AGENT_BEHIND)),  # the smaller one counts
        (agent(103.2), pilot, "worker", "n1", "start", "w.0", "", "pid 1"),
        (agent(103.2), pilot, "worker", "n1", "start", "w.1", "", "pid 2"),
        (113.0, "client", "pilot", "client", "shutdown_requested", pilot, "", "session closed"),
        (114.0, "client", "pilot", "client", "DONE", pilot, "", ""),
    ]


def write_journal(uid: str) -> str:
    journal = Journal.create(uid, {"uid": uid})
    wires = [(f"t{i}", i, {"uid": f"t{i}", "kind": "executable", "name": "sim" if i < 3 else None, "cores": 1})
             for i in range(1, 6)]  # t5 never left the client: NEW
    journal.commit([("tasks", wires), ("events", task_updates()), ("profile", profile_rows())])
    journal.connection.close()
    return uid
