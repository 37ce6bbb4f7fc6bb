"""Reattach and resume: a session rebuilt from its journal and reconnected to what is left of its pilots.

1. ``load``: tasks and pilots as the journal left them (the journal's events replayed through ``Task._apply``).
2. ``collect``: for each pilot that was not final, the updates in its agent's journal (results that finished
   while no client listened), and whether its agent is alive (``agent.alive`` fresh, no ``agent.stopped``).
3. Live pilots are followed again: the new client's address goes to ``client.json``, where the agent finds it
   and reconnects; the tasks sent to it are sent again (the agent drops those it has). Pilots that are gone end
   with their agent's own reason; their unfinished tasks end FAILED (reattach) or run again (resume).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from scalems_like.agent.config import write_private_file
from scalems_like.client.engine import PilotRecord
from scalems_like.client.journal import Journal
from scalems_like.client.pilot import Pilot
from scalems_like.client.task import Task
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ConfigError
from scalems_like.protocol.records import (
    CLIENT_FILE,
    FILE_NAME,
    read_records,
    read_stopped,
    seconds_since_alive,
)
from scalems_like.staging.directives import Directive
from scalems_like.states import PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.client")

_DESCRIPTION_KEYS = ("name", "environment", "working_directory", "cores", "gpus", "ranks", "stdin", "stdout",
                     "stderr", "timeout", "retries", "idempotent", "tags")


def description_from_wire(wire: dict[str, Any]) -> TaskDescription:
    """The TaskDescription a task mapping was made from (staging paths as resolved at submission)."""
    fields = {key: wire[key] for key in _DESCRIPTION_KEYS if key in wire}
    if "function" in wire:
        args, kwargs = cloudpickle.loads(wire["call_arguments"])
        description = TaskDescription(function=cloudpickle.loads(wire["function"]), args=args, kwargs=kwargs,
                                      **fields)
    else:
        description = TaskDescription(executable=wire["executable"], arguments=wire["arguments"], **fields)
    for key in ("input_staging", "output_staging"):
        if wire.get(key):
            object.__setattr__(description, key, tuple(Directive.from_wire(item) for item in wire[key]))
    return description


def load(session: Session, journal: Journal) -> dict[str, dict[str, Any]]:
    """Fill ``session`` with the journal's tasks and pilots; returns the task mappings by uid."""
    wires: dict[str, dict[str, Any]] = {}
    for uid, wire in journal.tasks():
        session._tasks[uid] = Task(uid, description_from_wire(wire), session)
        wires[uid] = wire
    for update in journal.events():
        task = session._tasks.get(update.get("uid"))
        if task is not None:
            task._apply(update)
    for uid, description, resource, sandbox, native_id, state, failure in journal.pilots():
        pilot = Pilot(uid, cloudpickle.loads(description), session._resource(resource), Path(sandbox), session)
        pilot.state, pilot.native_id, pilot.failure = PilotState(state), native_id, failure
        pilot.history.append((pilot.state, time.time(), "journal"))
        session._pilots[uid] = pilot
    session._pilot_numbers = itertools.count(len(session._pilots))
    return wires


def restore(session: Session, *, resume: bool, pilot_description: PilotDescription | None) -> Session:
    journal = Journal.open(session.uid)
    wires = load(session, journal)
    session._journal = journal
    session.open()
    engine = session._engine
    unsent = [task for task in session._tasks.values() if task.state is TaskState.NEW]

    def queue_unsent() -> None:
        engine.hold_pending = True  # until we know whether a new pilot comes
        for task in unsent:
            engine.wire[task.uid] = {**wires[task.uid], "attempt": task.attempt}
        engine.pending.extend(unsent)
    engine.call(queue_unsent)
    for pilot in [p for p in session._pilots.values() if not p.state.is_final]:
        record = PilotRecord(pilot, session._adapter(pilot.resource, pilot.sandbox.parent))
        engine.call(lambda r=record: reconnect_or_end(session, r, wires, resume))
    waiting = engine.call(lambda: len(engine.pending))
    live = [p for p in session._pilots.values() if not p.state.is_final]
    if resume and waiting and not live:
        log.info("session %s resumes %d task(s) on a new pilot", session.uid, waiting)
        session.submit_pilot(pilot_description or last_description(session))

    def release() -> None:
        engine.hold_pending = False
        engine.fail_pending_without_pilots("every pilot of the session has ended")
    engine.call(release)
    return session


def last_description(session: Session) -> PilotDescription:
    if not session._pilots:
        raise ConfigError(f"session {session.uid} has no pilot to resume with: give pilot_description=")
    return list(session._pilots.values())[-1].description


def reconnect_or_end(session: Session, record: PilotRecord, wires: dict[str, dict[str, Any]], resume: bool) -> None:
    """(I/O thread) follow a pilot again if its agent lives; else end it, and re-run or fail its tasks."""
    engine, pilot = session._engine, record.pilot
    engine.pilots[pilot.uid] = record
    recovered = read_records(pilot.sandbox / FILE_NAME)
    if recovered:
        engine.apply_updates(record, recovered)
    mine = [t for t in session._tasks.values() if t.pilot == pilot.uid and not t.state.is_final]
    record.outstanding = {task.uid for task in mine}
    stopped = read_stopped(pilot.sandbox)
    silence = seconds_since_alive(pilot.sandbox)
    if stopped is None and pilot.state is PilotState.ACTIVE and silence is not None \
            and silence < pilot.resource.heartbeat_timeout:
        follow(session, record, [wires[task.uid] for task in mine])
        return
    if stopped is not None:
        state = PilotState.FAILED if stopped[0] == "FAILED" else PilotState.DONE
        reason = f"its agent ended while no client was attached: {stopped[1]}"
    elif silence is None:
        state, reason = PilotState.FAILED, f"it was {pilot.state.value} when the client left, and never reported"
    else:
        state, reason = PilotState.FAILED, f"its agent stopped answering {silence:.0f} s ago (killed, or node lost)"
    # a batch job still queued or running would only idle: give the allocation back (never for a local pilot:
    # its "job id" is a pid, which the system may have given to another process since)
    if pilot.resource.scheduler != "local" and pilot.native_id \
            and record.adapter.attach(pilot.native_id, lambda _event: None):
        engine.cancel_job(record)
    if resume:
        requeue(session, record, reason, wires)
    pilot.failure = pilot.failure or reason
    engine.end_pilot(record, state, reason)


def follow(session: Session, record: PilotRecord, resend: list[dict[str, Any]]) -> None:
    engine, pilot = session._engine, record.pilot
    address = engine.endpoint_for(pilot.resource.client_address)
    write_private_file(pilot.sandbox / CLIENT_FILE, json.dumps({"address": address, "time": time.time()}))
    record.last_seen = time.time()
    record.resend = resend
    if pilot.native_id:
        record.adapter.attach(pilot.native_id, lambda event: engine.post(lambda: engine.on_job_event(record, event)))
    log.info("pilot %s: waiting for its agent at %s", pilot.uid, address)


def requeue(session: Session, record: PilotRecord, why: str, wires: dict[str, dict[str, Any]]) -> None:
    """(resume) the pilot's unfinished tasks: those that had not started run again; those that had, only if
    idempotent or with retries left; the others end FAILED saying so."""
    engine, pilot, now = session._engine, record.pilot, time.time()
    again, failed = [], []
    for uid in sorted(record.outstanding):
        task = session._tasks[uid]
        started = task.state is TaskState.RUNNING
        if not started:
            again.append((task, f"pilot {pilot.uid} ended before it started ({why}); runs again"))
        elif task.description.idempotent or task.attempt < task.description.retries:
            task.attempt += 1
            again.append((task, f"pilot {pilot.uid} ended while it ran ({why}); runs again"))
        else:
            failed.append(uid)
    record.outstanding.clear()
    with engine.lock:
        for task, reason in again:
            engine.journal_batch.append(task._requeue(now, reason))
            engine.wire[task.uid] = {**wires[task.uid], "attempt": task.attempt}
            engine.pending.append(task)
    engine.end_tasks(failed, TaskState.FAILED, f"was running when pilot {pilot.uid} ended ({why}); not run again: "
                     "not idempotent and no retries left")
