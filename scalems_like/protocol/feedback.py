"""The bootstrap's feedback file, ``PILOT_SANDBOX/bootstrap/events``: one event per line,
``TIME<TAB>STEP<TAB>STATE<TAB>EXIT_CODE`` (STATE: started, done, failed), appended by ``bootstrap/bootstrap.sh``.
Read by the client (live, on a shared file system) and by the agent (which forwards it in BootstrapEvents).
"""

from __future__ import annotations

import contextlib

Event = tuple[float, str, str, int]


def parse_events(text: str) -> list[Event]:
    """The events of the complete lines of ``text`` (a line still being written is left out)."""
    events: list[Event] = []
    for line in text.splitlines(keepends=True):
        fields = line.rstrip("\n").split("\t")
        if line.endswith("\n") and len(fields) == 4:
            with contextlib.suppress(ValueError):
                events.append((float(fields[0]), fields[1], fields[2], int(fields[3])))
    return events
