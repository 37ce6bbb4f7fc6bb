"""What the client records for the session's profile besides task updates (which the journal's ``events`` table
already holds): pilot states, bootstrap steps, the agents' own events, and each agent's clock offset.

Rows are appended to a list on the session's I/O thread and handed to the journal once per loop pass with the task
updates (one batch, committed by the journal's writer thread): nothing is written per event. Every row says which
clock stamped its time: ``"client"``, or the uid of the pilot whose agent (or bootstrap, on the same node) did.

**Clock offsets.** Each message an agent sends with a time (Hello, Heartbeat) gives ``received - sent`` on this
client's clock: the offset between the two clocks plus the message's delay, which is never negative. The smallest
such value seen is the best estimate of the offset (:mod:`scalems_like.record.profile` adds it to the agent's
times); a row is written each time it shrinks by more than :data:`OFFSET_RESOLUTION`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from scalems_like.record.journal import Journal, ProfileRow

OFFSET_RESOLUTION = 0.001
"""Seconds an offset estimate must improve by to be recorded again."""
CLIENT_STAMPED = frozenset({"client", "batch", "journal"})
"""Hosts of pilot state changes stamped by this client (the others come from the agent)."""


class ProfileRecorder:
    """The profile rows of one session's client, buffered until :meth:`flush`."""

    def __init__(self) -> None:
        self.rows: list[ProfileRow] = []
        self.offsets: dict[str, float] = {}
        """Pilot uid → the smallest (client receipt - agent send) time seen."""

    def add(self, when: float, clock: str, component: str, where: str, event: str, uid: str, name: str = "",
            detail: str = "") -> None:
        self.rows.append((when, clock, component, where, event, uid, name, detail))

    def flush(self, journal: Journal | None) -> None:
        if self.rows:
            if journal is not None:
                journal.add_profile(self.rows)
            self.rows = []

    # -- what the engine reports ---------------------------------------------------------------------
    def pilot_state(self, pilot: str, state: str, host: str, when: float, failure: str | None) -> None:
        clock = "client" if host in CLIENT_STAMPED else pilot
        self.add(when, clock, "pilot", host, state, pilot, detail=failure or "")

    def pilot_event(self, pilot: str, event: str, detail: str = "") -> None:
        """Something the client did or heard about a pilot, now (shutdown requested, agent stopping)."""
        self.add(time.time(), "client", "pilot", "client", event, pilot, detail=detail)

    def agent_hello(self, pilot: str, host: str, when: float, nodes: Sequence[Sequence[Any]]) -> None:
        self.clock(pilot, when)
        self.add(when, pilot, "agent", host, "hello", pilot, detail=json.dumps([list(node) for node in nodes]))

    def bootstrap(self, pilot: str, events: Sequence[Any]) -> None:
        """New bootstrap events (``BootstrapEvent``: time, step, state, exit_code), stamped on the job's node."""
        for event in events:
            self.add(event.time, pilot, "bootstrap", "", event.state, pilot, event.step, str(event.exit_code))

    def agent_events(self, pilot: str, events: list[list[Any]]) -> None:
        """An AgentEvents message: [time, component, where, event, uid, detail] on the agent's clock."""
        for when, component, where, event, uid, detail in events:
            self.add(float(when), pilot, component, where, event, uid, detail=detail)

    def clock(self, pilot: str, agent_time: float) -> None:
        """A message the agent stamped ``agent_time`` has just arrived."""
        offset = time.time() - agent_time
        best = self.offsets.get(pilot)
        if best is None or offset < best - OFFSET_RESOLUTION:
            self.offsets[pilot] = offset
            self.add(time.time(), "client", "clock", "client", "offset", pilot, detail=repr(offset))
