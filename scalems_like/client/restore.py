"""Reattach and resume: a session rebuilt from its journal and reconnected to what is left of its pilots.

1. ``load``: tasks and pilots as the journal left them, handed to the session's engine (the journal's events
   replayed through ``Task._apply``; a function shared by many tasks is unpickled once).
2. Tasks the journal left unfinished under a pilot it has final (the client died between the two rows) end as
   that pilot's end would have ended them: FAILED and ``interrupted`` (CANCELED under a canceled pilot).
3. For each pilot that was not final, off the I/O thread: the updates in its agent's journal (results that
   finished while no client listened), and whether its agent is alive (``agent.alive`` fresh, no
   ``agent.stopped``). Live pilots are followed again: the new client's address goes to ``client.json``, where
   the agent finds it and reconnects; the tasks sent to it are sent again (the agent drops those it has). Pilots
   that are gone end with their agent's own reason; their unfinished tasks end FAILED, marked ``interrupted``.
4. ``resume`` only: interrupted tasks (of this restore, or of pilots that ended while the earlier client watched:
   walltime, node failure) run again on a new pilot; finished tasks never do.

``cancel_reason`` (``scalems-like cancel`` of a session whose client is gone, :mod:`scalems_like.client.cancel`):
tasks never sent end CANCELED with that reason instead of waiting, and a pilot that never reported (its job
queued or starting) ends CANCELED (its batch job canceled) instead of FAILED; live pilots are followed again, to
be shut down by the caller. Pilots whose agent ended on its own keep the end it gave them.

This module reads the journal and decides; what changes tasks and pilots runs on the engine's I/O thread through
its command API (:mod:`scalems_like.client.reconnect` does that work there). The session is asked for two things
only: to keep the journal and lock taken here (``_adopt_record``; then it opens as any session does), and to let go
of them if the restore fails (``_abandon``).

A session another live client process holds is refused at once (:mod:`scalems_like.record.client_lock`). A restore
that fails on the way (a corrupt journal row, a pilot sandbox that cannot be read) stops what it
started (the I/O thread, the journal's writer), leaves the journal's session state as it was and raises a
ScalemsError naming the session and the cause.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import cloudpickle

from scalems_like.client.pilot import BootstrapEvent, Pilot
from scalems_like.client.task import Task
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ConfigError, ScalemsError
from scalems_like.protocol.tasks import JournaledUpdate
from scalems_like.record.client_lock import ClientLock
from scalems_like.record.journal import Journal
from scalems_like.staging.directives import Directive
from scalems_like.states import PilotState

if TYPE_CHECKING:
    from scalems_like.client.engine import Engine
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.client")

_DESCRIPTION_KEYS = ("name", "environment", "working_directory", "cores", "gpus", "ranks", "stdin", "stdout",
                     "stderr", "timeout", "retries", "idempotent", "tags", "inherit_environment", "wrapper")


def description_from_wire(wire: dict[str, Any], functions: dict[bytes, Any] | None = None) -> TaskDescription:
    """The TaskDescription a task mapping was made from (staging paths as resolved at submission).

    ``functions``: functions already unpickled, by their pickle (the journal stores a function once, by digest,
    and hands every task of it the same bytes): 10 000 tasks of one function unpickle it once.
    """
    fields = {key: wire[key] for key in _DESCRIPTION_KEYS if key in wire}
    if "function" in wire:
        args, kwargs = cloudpickle.loads(wire["call_arguments"])
        description = TaskDescription(function=_function(wire["function"], functions), args=args, kwargs=kwargs,
                                      **fields)
    else:
        description = TaskDescription(executable=wire["executable"], arguments=wire["arguments"], **fields)
    for key in ("input_staging", "output_staging"):
        if wire.get(key):
            object.__setattr__(description, key, tuple(Directive.from_wire(item) for item in wire[key]))
    return description


def _function(pickle: bytes, functions: dict[bytes, Any] | None) -> Any:
    if functions is None:
        return cloudpickle.loads(pickle)
    if pickle not in functions:  # (a bytes object caches its hash: the same blob is looked up in O(1))
        functions[pickle] = cloudpickle.loads(pickle)
    return functions[pickle]


def load(session: Session, engine: Engine, journal: Journal) -> dict[str, dict[str, Any]]:
    """The journal's tasks and pilots (handles of ``session``) into ``engine``; returns the task mappings by uid."""
    wires: dict[str, dict[str, Any]] = {}
    functions: dict[bytes, Any] = {}
    tasks: dict[str, Task] = {}
    for uid, wire in journal.tasks():
        tasks[uid] = Task(uid, description_from_wire(wire, functions), session)
        wires[uid] = wire
    for update in journal.events():
        task = tasks.get(update.get("uid"))  # type: ignore[arg-type]
        if task is not None:
            task._apply(cast(JournaledUpdate, update))
    for task in tasks.values():  # (final in the journal: read back from it when asked)
        if task.state.is_final:
            task._compact(journal.reader)
    steps = journal.bootstrap_steps()
    pilots = []
    for uid, description, resource, sandbox, native_id, state, failure in journal.pilots():
        pilot = Pilot(uid, cloudpickle.loads(description), engine.resource(resource), Path(sandbox), session)
        pilot.state, pilot.native_id, pilot.failure = PilotState(state), native_id, failure
        pilot.bootstrap_events = [BootstrapEvent(event) for event in steps.get(uid, [])]
        pilot.history.append((pilot.state, time.time(), "journal"))
        pilots.append(pilot)
    engine.load(list(tasks.values()), pilots)
    return wires


def restore(session: Session, engine: Engine, *, resume: bool, pilot_description: PilotDescription | None,
            cancel_reason: str | None = None) -> Session:
    """Rebuild ``session`` (whose engine is ``engine``) from its journal and reconnect it (see the module); raises
    ScalemsError if that fails on the way, having stopped what it started (FileNotFoundError if the session has no
    journal)."""
    journal = Journal.open(session.uid)
    try:  # before anything is read: a session another live client holds is left alone
        lock = ClientLock.acquire(journal.path.parent, session.uid)
    except BaseException:  # (SessionInUse; or the lock file cannot be opened or written)
        journal.close()
        raise
    session._adopt_record(journal, lock)
    state = "detached"
    doing = "canceled" if cancel_reason else "resumed" if resume else "reattached"
    refused: ConfigError | None = None
    try:
        state = journal.info().get("state", state)
        backend = journal.info().get("backend", "native")
        if backend != "native":  # (its pilots were RADICAL-Pilot's, which end with the client that started them)
            refused = ConfigError(f"session {session.uid} ran on backend {backend!r}: it cannot be {doing} "
                                  "(RADICAL-Pilot's pilots end with the session that started them)")
            raise refused
        wires = load(session, engine, journal)
        marks = journal.agent_marks()
        session.open()
        reconnect(session, engine, wires, marks, resume=resume, pilot_description=pilot_description,
                  cancel_reason=cancel_reason)
    except BaseException as error:  # (Ctrl-C while waiting for the agents too: nothing may stay held)
        session._abandon(state)
        if not isinstance(error, Exception) or error is refused:
            raise
        cause = str(error) if type(error) is ScalemsError else f"{type(error).__name__}: {error}"
        raise ScalemsError(f"session {session.uid} could not be {doing}: {cause}") from error
    return session


def reconnect(session: Session, engine: Engine, wires: dict[str, dict[str, Any]], marks: dict[str, float], *,
              resume: bool, pilot_description: PilotDescription | None, cancel_reason: str | None = None) -> None:
    engine.restore_unsent(wires, cancel_reason)
    engine.follow_again(wires, marks, cancel_reason)
    if resume:
        engine.requeue_interrupted(wires)
    waiting = engine.waiting_for_a_pilot()
    if resume and waiting:
        log.info("session %s resumes %d task(s) on a new pilot", session.uid, waiting)
        session.submit_pilot(pilot_description or last_description(session.uid, engine))
    engine.release_held()


def last_description(uid: str, engine: Engine) -> PilotDescription:
    pilots = engine.pilot_list()
    if not pilots:
        raise ConfigError(f"session {uid} has no pilot to resume with: give pilot_description=")
    return pilots[-1].description
