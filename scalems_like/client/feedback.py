"""The client end of the bootstrap feedback channel: the append-only events file in the pilot sandbox
(format in :mod:`scalems_like.protocol.feedback`); a step's output is in ``bootstrap/STEP.log``. Only complete
lines are consumed, so a line being written is read next time.
"""

from __future__ import annotations

import collections
from pathlib import Path

from scalems_like.client.pilot import BootstrapEvent
from scalems_like.protocol.feedback import parse_events

TAIL_LINES = 50


class FeedbackReader:
    def __init__(self, pilot_sandbox: Path) -> None:
        self.directory = pilot_sandbox / "bootstrap"
        self.offset = 0

    def read_new(self) -> list[BootstrapEvent]:
        try:
            with open(self.directory / "events", "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [BootstrapEvent(event) for event in parse_events(complete.decode(errors="replace"))]

    def tail(self, step: str, lines: int = TAIL_LINES) -> str:
        return tail_of(self.directory / f"{step}.log", lines)


def tail_of(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, errors="replace") as handle:
            return "".join(collections.deque(handle, maxlen=lines)).rstrip()
    except OSError:
        return ""


def describe_step_failure(reader: FeedbackReader, event: BootstrapEvent) -> str:
    tail = reader.tail(event.step)
    text = f"bootstrap step '{event.step}' failed with exit code {event.exit_code}"
    return f"{text}; its output ends with:\n{tail}" if tail else f"{text} (it printed nothing)"
