"""Reattach and resume: a session rebuilt from its journal and reconnected to what is left of its pilots.

1. ``load``: tasks and pilots as the journal left them (the journal's events replayed through ``Task._apply``).
2. For each pilot that was not final, the updates in its agent's journal (results that finished
   while no client listened), and whether its agent is alive (``agent.alive`` fresh, no ``agent.stopped``).
3. Live pilots are followed again: the new client's address goes to ``client.json``, where the agent finds it
   and reconnects; the tasks sent to it are sent again (the agent drops those it has). Pilots that are gone end
   with their agent's own reason; their unfinished tasks end FAILED, marked ``interrupted``.
4. ``resume`` only: interrupted tasks (of this restore, or of pilots that ended while the earlier client watched:
   walltime, node failure) run again on a new pilot; finished tasks never do.
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
from scalems_like.errors import ConfigError, WaitTimeout
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
                     "stderr", "timeout", "retries", "idempotent", "tags", "inherit_environment", "wrapper")


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
        engine.call(lambda r=record: reconnect_or_end(session, r, wires))
    followed = [r for r in engine.call(lambda: list(engine.pilots.values())) if not r.pilot.state.is_final]
    patience = max([r.pilot.resource.heartbeat_timeout for r in followed], default=0) + 5

    def settled() -> bool:  # every followed agent has greeted the new client, or was found gone
        return all(r.greeted or r.ending or r.pilot.state.is_final for r in followed)
    try:
        session._wait_for(settled, patience, lambda: "")
    except WaitTimeout:
        log.warning("session %s: not every pilot settled within %g s of the reattach", session.uid, patience)
    if resume:
        engine.call(lambda: requeue_interrupted(session, wires))
    waiting = engine.call(lambda: len(engine.pending))
    live = engine.call(lambda: [r for r in engine.pilots.values() if not r.pilot.state.is_final and not r.ending])
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


def reconnect_or_end(session: Session, record: PilotRecord, wires: dict[str, dict[str, Any]]) -> None:
    """(I/O thread) follow a pilot again if its agent lives; else end it (its unfinished tasks: interrupted)."""
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
    pilot.failure = pilot.failure or reason
    engine.end_pilot(record, state, reason)


def follow(session: Session, record: PilotRecord, resend: list[dict[str, Any]]) -> None:
    engine, pilot = session._engine, record.pilot
    address = engine.endpoint_for(pilot.resource.client_address)
    write_private_file(pilot.sandbox / CLIENT_FILE, json.dumps({"address": address, "time": time.time()}))
    record.last_seen = time.time()
    record.resend = resend
    record.reattached = True
    if pilot.native_id and pilot.resource.scheduler != "local":  # a local "job id" is a pid: never follow one
        record.adapter.attach(pilot.native_id, lambda event: engine.post(lambda: engine.on_job_event(record, event)))
    log.info("pilot %s: waiting for its agent at %s", pilot.uid, address)


def requeue_interrupted(session: Session, wires: dict[str, dict[str, Any]]) -> int:
    """(resume, I/O thread) tasks that FAILED because their pilot ended run again: those that had not started
    always; those that had, if idempotent or with retries left. Returns how many were queued."""
    engine, now, again = session._engine, time.time(), 0
    with engine.lock:
        for task in session._tasks.values():
            if task.state is not TaskState.FAILED or task.interrupted is None:
                continue
            if task.interrupted == "running":
                if not (task.description.idempotent or task.attempt < task.description.retries):
                    continue  # its reason already says its pilot ended while it ran
                task.attempt += 1
            engine.journal_batch.append(task._requeue(now, f"resumed after: {task.reason}"))
            engine.wire[task.uid] = {**wires[task.uid], "attempt": task.attempt}
            engine.pending.append(task)
            engine.queue_callbacks(task, TaskState.NEW)
            again += 1
        engine.changed.notify_all()
    return again
