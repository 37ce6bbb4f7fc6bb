"""A session's log as ``logs`` and ``submit`` print it: bootstrap steps, then the client's (or agents') output.

Submitted session: the launcher's bootstrap events and ``session.log`` (the output of its ``scalems-like run``).
Interactive session: each pilot's bootstrap events and ``agent.log``. Following reads the files as they grow
(like ``tail -f``) and stops when the session has ended.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
import time
from pathlib import Path
from typing import Any

from scalems_like.cli.overview import is_finished, overviews, sandboxes
from scalems_like.launcher.record import CANCELED, END, LaunchRecord, read_end, session_directory
from scalems_like.launcher.state import from_files, launch_states
from scalems_like.states import SessionState

POLL = 0.25
"""Seconds between looks at the files while following."""
BATCH_POLL = 10.0
"""Seconds between questions to the batch system while following (a job can end without a word: walltime)."""


@dataclasses.dataclass
class Source:
    label: str
    path: Path
    events: bool
    """A bootstrap feedback file (rendered line by line) rather than plain output."""
    offset: int = 0
    pending: bytes = b""

    def read_new(self) -> list[str]:
        """The complete lines written since the last call."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.pending + data
        lines = data.split(b"\n")
        self.pending = lines.pop()
        return [self.render(line.decode(errors="replace")) for line in lines]

    def render(self, line: str) -> str:
        if not self.events:
            return line
        fields = line.split("\t")
        if len(fields) != 4:
            return f"[{self.label}] {line}"
        when, step, state, code = fields
        try:
            stamp = datetime.datetime.fromtimestamp(float(when)).strftime("%H:%M:%S")
        except ValueError:
            stamp = when
        suffix = f" (exit code {code})" if state == "failed" else ""
        return f"[{self.label}] {stamp} {step} {state}{suffix}"


def log_sources(uid: str, record: LaunchRecord | None, pilots: list[dict[str, Any]]) -> list[Source]:
    if record is not None:
        sandbox = record.launcher_sandbox
        return [Source("bootstrap", sandbox / "bootstrap" / "events", True), Source("session", record.session_log,
                                                                                     False)]
    found: list[Source] = []
    for session_sandbox in sandboxes(uid, record, pilots):
        for pilot in sorted(session_sandbox.glob("pilot.*")):
            found += [Source(f"{pilot.name} bootstrap", pilot / "bootstrap" / "events", True),
                      Source(f"{pilot.name} agent", pilot / "agent.log", False)]
    return found


def all_lines(source: Source) -> list[str]:
    """Every line not read yet, a last one without its newline included."""
    lines = source.read_new()
    if source.pending:  # a last line without its newline yet
        lines.append(source.render(source.pending.decode(errors="replace")))
        source.pending = b""
    return lines


def closing_line(record: LaunchRecord | None) -> str | None:
    """The last line of a submitted session's log once it has ended: its state, when, and why (the launcher's
    last bootstrap step, ``session_start started``, would otherwise end the log as if the session still ran)."""
    if record is None:
        return None
    state = from_files(record)
    if state is None:
        return None
    marker = session_directory(record.uid) / (END if read_end(record.uid) is not None else CANCELED)
    try:
        stamp = datetime.datetime.fromtimestamp(marker.stat().st_mtime).strftime("%H:%M:%S") + " "
    except OSError:
        stamp = ""
    return f"[session] {stamp}ended {state.state}" + (f": {state.detail}" if state.detail else "")


def print_source(source: Source) -> None:
    lines = all_lines(source)
    if lines and not source.events and not lines[0].startswith("["):
        print(f"==> {source.path} <==")
    for line in lines:
        print(line)


def _ended(uid: str, record: LaunchRecord | None, last_asked: float) -> tuple[bool, float]:
    """(has the session ended, when the batch system was last asked)."""
    if record is not None:
        if from_files(record) is not None:
            return True, last_asked
        if time.monotonic() - last_asked < BATCH_POLL:
            return False, last_asked
        return launch_states([record], patience=3.0)[uid].is_final, time.monotonic()
    if time.monotonic() - last_asked < 2.0:
        return False, last_asked
    (row,) = overviews([uid], patience=0.0)
    return is_finished(row), time.monotonic()


def follow_session(uid: str, record: LaunchRecord | None, sources: list[Source]) -> int:
    """Print the logs as they grow until the session ends; its exit status (0: DONE) or 0 on Ctrl-C."""
    last_asked = time.monotonic()
    try:
        while True:
            for source in sources:
                for line in source.read_new():
                    print(line, flush=True)
            ended, last_asked = _ended(uid, record, last_asked)
            if ended:
                for source in sources:
                    print_source(source)
                closing = closing_line(record)
                if closing:
                    print(closing, flush=True)
                break
            time.sleep(POLL)  # files give no change notification across hosts: look again shortly
    except KeyboardInterrupt:
        print(f"\nstopped following; the session goes on (scalems-like logs {uid} -f)", file=sys.stderr)
        return 0
    if record is None:
        return 0
    state = from_files(record) or launch_states([record], patience=3.0)[uid]
    print(f"session {uid}: {state.state}" + (f" ({state.detail})" if state.detail else ""), file=sys.stderr)
    return 0 if state.state is SessionState.DONE else 1
