"""The state of a submitted session, from its launch record, its launcher sandbox and the batch system.

    QUEUED         the batch job waits for an allocation
    BOOTSTRAPPING  the job runs its bootstrap (pre-bootstrap hooks, the environment)
    RUNNING        the session's client runs in the allocation
    DONE           ``scalems-like run`` ended with exit code 0 (every task DONE)
    FAILED         it ended with another exit code, or the job ended without the session recording its end
                   (a failed bootstrap step, the walltime, a node failure): the detail says which
    CANCELED       ``scalems-like cancel`` (or the batch system's own cancel) ended it
    CANCELING      canceled, the batch system still has the job

Files decide where they can (a recorded end, a failed bootstrap step); the batch system is asked through the
resource's psij executor only for sessions whose files say nothing final.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import defaultdict
from pathlib import Path

from scalems_like.adapters import JobEvent, JobState, adapter_for
from scalems_like.errors import ConfigError
from scalems_like.launcher.record import LaunchRecord, read_canceled, read_end
from scalems_like.protocol.feedback import parse_events
from scalems_like.resources import load_resource
from scalems_like.states import SessionState


@dataclasses.dataclass(frozen=True)
class LaunchState:
    state: SessionState
    detail: str = ""
    step: str | None = None
    """The launcher's last bootstrap step (``session_start`` once the client runs)."""

    @property
    def is_final(self) -> bool:
        return self.state.is_final


def bootstrap_step(sandbox: Path) -> tuple[str | None, str | None]:
    """(last step, failure) from the launcher's feedback events."""
    try:
        events = parse_events((sandbox / "bootstrap" / "events").read_text(errors="replace"))
    except OSError:
        return None, None
    if not events:
        return None, None
    _when, step, state, code = events[-1]
    if state == "failed":
        log = sandbox / "bootstrap" / f"{step}.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
        return step, f"bootstrap step '{step}' failed with exit code {code}" + (
            ": " + " | ".join(tail) if tail else "")
    return step, None


def from_files(record: LaunchRecord) -> LaunchState | None:
    """What the files say for sure (a final state), or None."""
    end, canceled = read_end(record.uid), read_canceled(record.uid)
    step, failure = bootstrap_step(record.launcher_sandbox)
    ended_badly = failure is not None or (end is not None and end.get("exit_code") != 0)
    if canceled is not None and ended_badly:  # (a session that ended DONE while a cancel came stays DONE)
        return LaunchState(SessionState.CANCELED, f"canceled by {canceled.get('by', '?')}", step)
    if end is not None:
        code = end.get("exit_code")
        if code == 0:
            return LaunchState(SessionState.DONE, "every task DONE", step)
        return LaunchState(SessionState.FAILED, f"scalems-like run ended with exit code {code} (see scalems-like logs)",
                           step)
    if failure is not None:
        return LaunchState(SessionState.FAILED, failure, step)
    return None


def combine(record: LaunchRecord, event: JobEvent | bool | None) -> LaunchState:
    """The state from the files and the batch system's answer (None: no answer in time; False: job unknown)."""
    known = from_files(record)
    if known is not None:
        return known
    step, _failure = bootstrap_step(record.launcher_sandbox)
    canceled = read_canceled(record.uid)
    if event is False or (isinstance(event, JobEvent) and event.state.is_final):
        if canceled is not None or (isinstance(event, JobEvent) and event.state is JobState.CANCELED):
            by = canceled.get("by", "?") if canceled else "the batch system"
            return LaunchState(SessionState.CANCELED, f"canceled by {by}", step)
        how = "is gone" if event is False else f"ended {event.state.value}" + (
            f" with exit code {event.exit_code}" if event.exit_code is not None else "")
        return LaunchState(SessionState.FAILED, f"the batch job {how} before the session recorded its end "
                                     "(walltime? node failure?): see scalems-like logs", step)
    if canceled is not None:
        return LaunchState(SessionState.CANCELING, "canceled; the batch system still has the job", step)
    if step == "session_start":
        return LaunchState(SessionState.RUNNING, "", step)
    if step is not None:
        return LaunchState(SessionState.BOOTSTRAPPING, f"bootstrap step '{step}'", step)
    if isinstance(event, JobEvent) and event.state is JobState.RUNNING:
        return LaunchState(SessionState.BOOTSTRAPPING, "the job started", step)
    return LaunchState(SessionState.QUEUED, "" if event is not None else "(no answer from the batch system yet)", step)


def ask_batch_system(records: list[LaunchRecord], patience: float = 5.0) -> dict[str, JobEvent | bool | None]:
    """Each job's latest state from the batch system, waiting up to ``patience`` s for the first answers."""
    answers: dict[str, JobEvent | bool | None] = {}
    arrived: dict[str, threading.Event] = {}
    lock = threading.Lock()
    by_resource: dict[str, list[LaunchRecord]] = defaultdict(list)
    for record in records:
        by_resource[record.resource].append(record)
    for resource, group in by_resource.items():
        try:
            config = load_resource(resource)
        except ConfigError:
            continue  # the record's resource config is gone: no one to ask
        adapter = adapter_for(config, group[0].launcher_sandbox.parent)
        for record in group:
            arrived[record.uid] = threading.Event()

            def on_event(event: JobEvent, uid: str = record.uid) -> None:
                with lock:
                    answers[uid] = event
                arrived[uid].set()

            if not adapter.attach(record.native_id, on_event):
                answers[record.uid] = False
                arrived[record.uid].set()
    deadline = time.monotonic() + patience
    for event in arrived.values():
        event.wait(max(0.0, deadline - time.monotonic()))
    with lock:
        return {record.uid: answers.get(record.uid) for record in records}


def launch_states(records: list[LaunchRecord], patience: float = 5.0) -> dict[str, LaunchState]:
    """The state of each submitted session; the batch system is asked only about the undecided ones."""
    decided = {record.uid: from_files(record) for record in records}
    open_records = [record for record in records if decided[record.uid] is None]
    answers = ask_batch_system(open_records, patience) if open_records else {}
    return {record.uid: decided[record.uid] or combine(record, answers.get(record.uid)) for record in records}
