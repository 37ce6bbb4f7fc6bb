"""Reattach and resume: a session rebuilt from its journal and reconnected to what is left of its pilots.

1. ``load``: tasks and pilots as the journal left them (the journal's events replayed through ``Task._apply``;
   a function shared by many tasks is unpickled once).
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

A session another live client process holds is refused at once (:mod:`scalems_like.client.client_lock`). A restore
that fails on the way (a corrupt journal row, a pilot sandbox that cannot be read) stops what it
started (the I/O thread, the journal's writer), leaves the journal's session state as it was and raises a
ScalemsError naming the session and the cause.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from scalems_like.adapters.psij_adapter import terminate_local
from scalems_like.agent.config import write_private_file
from scalems_like.client.client_lock import ClientLock
from scalems_like.client.engine import PilotRecord
from scalems_like.client.journal import Journal
from scalems_like.client.pilot import BootstrapEvent, Pilot
from scalems_like.client.task import Task
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ConfigError, ScalemsError, WaitTimeout
from scalems_like.protocol.records import (
    CLIENT_FILE,
    FILE_NAME,
    read_alive,
    read_journal,
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


def load(session: Session, journal: Journal) -> dict[str, dict[str, Any]]:
    """Fill ``session`` with the journal's tasks and pilots; returns the task mappings by uid."""
    wires: dict[str, dict[str, Any]] = {}
    functions: dict[bytes, Any] = {}
    for uid, wire in journal.tasks():
        session._tasks[uid] = Task(uid, description_from_wire(wire, functions), session)
        wires[uid] = wire
    for update in journal.events():
        task = session._tasks.get(update.get("uid"))
        if task is not None:
            task._apply(update)
    for task in session._tasks.values():  # (final in the journal: read back from it when asked)
        if task.state.is_final:
            task._compact(journal.reader)
    steps = journal.bootstrap_steps()
    for uid, description, resource, sandbox, native_id, state, failure in journal.pilots():
        pilot = Pilot(uid, cloudpickle.loads(description), session._resource(resource), Path(sandbox), session)
        pilot.state, pilot.native_id, pilot.failure = PilotState(state), native_id, failure
        pilot.bootstrap_events = [BootstrapEvent(event) for event in steps.get(uid, [])]
        pilot.history.append((pilot.state, time.time(), "journal"))
        session._pilots[uid] = pilot
    session._pilot_numbers = itertools.count(len(session._pilots))
    return wires


def restore(session: Session, *, resume: bool, pilot_description: PilotDescription | None,
            cancel_reason: str | None = None) -> Session:
    """Rebuild ``session`` from its journal and reconnect it (see the module); raises ScalemsError if that
    fails on the way, having stopped what it started (FileNotFoundError if the session has no journal)."""
    journal = Journal.open(session.uid)
    try:  # before anything is read: a session another live client holds is left alone
        session._client_lock = ClientLock.acquire(journal.path.parent, session.uid)
    except BaseException:  # (SessionInUse; or the lock file cannot be opened or written)
        journal.close()
        raise
    state = "detached"
    try:
        state = journal.info().get("state", state)
        wires = load(session, journal)
        session._journal = journal
        session.open()
        reconnect(session, wires, resume=resume, pilot_description=pilot_description, cancel_reason=cancel_reason)
    except BaseException as error:  # (Ctrl-C while waiting for the agents too: nothing may stay held)
        abandon(session, journal, state)
        if not isinstance(error, Exception):
            raise
        cause = str(error) if type(error) is ScalemsError else f"{type(error).__name__}: {error}"
        doing = "canceled" if cancel_reason else "resumed" if resume else "reattached"
        raise ScalemsError(f"session {session.uid} could not be {doing}: {cause}") from error
    return session


def reconnect(session: Session, wires: dict[str, dict[str, Any]], *, resume: bool,
              pilot_description: PilotDescription | None, cancel_reason: str | None = None) -> None:
    engine = session._engine
    unsent = [task for task in session._tasks.values() if task.state is TaskState.NEW]

    def queue_unsent() -> None:
        if cancel_reason is not None:  # (never dispatched to a pilot that greets)
            engine.end_tasks([task.uid for task in unsent], TaskState.CANCELED, cancel_reason)
            end_orphans(session)
            return
        engine.hold_pending = True  # until we know whether a new pilot comes
        for task in unsent:
            engine.wire[task.uid] = {**wires[task.uid], "attempt": task.attempt}
        engine.pending.extend(unsent)
        end_orphans(session)
    engine.call(queue_unsent)
    settle_pilots(session, wires, cancel_reason)
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


def abandon(session: Session, journal: Journal, state: str) -> None:
    """Undo what a restore that failed had started: the I/O thread stops, the journal's session state is what it
    was before, the journal closes. Pilots go on (as after ``detach``)."""
    session._closed = True
    if session._opened:
        session._engine.stop()
    journal.set("state", state)
    journal.close()
    session._release_client_lock()


def end_orphans(session: Session) -> None:
    """(I/O thread) tasks the journal left unfinished under a pilot it has final end as that pilot's end ended
    them live (the client died after the pilot's row was committed, before its tasks' ends were)."""
    orphans: dict[str, list[str]] = {}
    for task in session._tasks.values():
        if task.pilot is not None and not task.state.is_final:
            orphans.setdefault(task.pilot, []).append(task.uid)
    for pilot_uid, uids in orphans.items():
        pilot = session._pilots.get(pilot_uid)
        if pilot is None or not pilot.state.is_final:
            continue
        why = f"pilot {pilot.uid} ended {pilot.state.value}"
        why += f": {pilot.failure.splitlines()[0]}" if pilot.failure else " (the journal has no end for this task)"
        if pilot.state is PilotState.CANCELED:
            session._engine.end_tasks(uids, TaskState.CANCELED, why)
        else:
            session._engine.interrupt_tasks(uids, why)


def settle_pilots(session: Session, wires: dict[str, dict[str, Any]], cancel_reason: str | None = None) -> None:
    """Follow again, or end, every pilot the journal left non-final; wait until each agent greeted or was found
    gone. Raises ScalemsError naming the pilots whose sandbox could not be looked at."""
    engine = session._engine
    records = [PilotRecord(pilot, session._adapter(pilot.resource, pilot.sandbox.parent))
               for pilot in session._pilots.values() if not pilot.state.is_final]
    assert session._journal is not None
    marks = session._journal.agent_marks()
    for record in records:  # agent events it sent while no client listened are taken from its journal
        record.profile_mark = marks.get(record.pilot.uid, float("-inf"))
    problems: list[str] = []

    def failed(record: PilotRecord) -> Callable[[Exception], None]:
        def report(error: Exception) -> None:
            with engine.lock:
                problems.append(f"pilot {record.pilot.uid} ({record.pilot.sandbox}): {type(error).__name__}: {error}")
                engine.changed.notify_all()
        return report
    for record in records:
        engine.call(lambda r=record: reconnect_or_end(session, r, wires, failed(r), cancel_reason))
    patience = max([r.pilot.resource.heartbeat_timeout for r in records], default=0) + 5

    def settled() -> bool:  # every followed agent has greeted the new client, or was found gone
        return bool(problems) or all(r.greeted or r.ending or r.unreported or r.pilot.state.is_final
                                     for r in records)
    try:
        session._wait_for(settled, patience, lambda: "")
    except WaitTimeout:
        log.warning("session %s: not every pilot settled within %g s of the reattach", session.uid, patience)
    if problems:
        raise ScalemsError("; ".join(problems))


def last_description(session: Session) -> PilotDescription:
    if not session._pilots:
        raise ConfigError(f"session {session.uid} has no pilot to resume with: give pilot_description=")
    return list(session._pilots.values())[-1].description


@dataclass(frozen=True)
class AgentTraces:
    """What a pilot's agent left in its sandbox, read off the I/O thread."""

    updates: list[dict[str, Any]]
    """Task updates of its journal (``agent.journal``), in order."""
    events: list[list[Any]]
    """Agent events of its journal, in order."""
    stopped: tuple[str, str] | None
    """(final state, reason) it wrote as it exited, or None."""
    silence: float | None
    """Seconds since its last heartbeat touched ``agent.alive`` (None: never)."""
    gone: str | None = None
    """"process PID on HOST" if the agent ran on this host and that process no longer runs, else None."""

    @classmethod
    def read(cls, sandbox: Path) -> AgentTraces:
        return cls(*read_journal(sandbox / FILE_NAME), read_stopped(sandbox), seconds_since_alive(sandbox),
                   gone_from_this_host(sandbox))


def gone_from_this_host(sandbox: Path) -> str | None:
    """"process PID on HOST" if the agent of ``sandbox`` ran on this host and its process has ended (a process
    that has its pid now may be another one: then the heartbeat's age decides, as for an agent on another host)."""
    import psutil  # (psij's own dependency)

    alive = read_alive(sandbox)
    if alive is None or alive[1] != socket.gethostname():
        return None
    try:
        if psutil.Process(alive[0]).status() != psutil.STATUS_ZOMBIE:  # (killed, not yet reaped by its parent)
            return None
    except psutil.NoSuchProcess:
        pass
    except psutil.Error:  # (not ours to look at: another user's process has that pid now)
        return None
    return f"process {alive[0]} on {alive[1]}"


def reconnect_or_end(session: Session, record: PilotRecord, wires: dict[str, dict[str, Any]],
                     failed: Callable[[Exception], None], cancel_reason: str | None = None) -> None:
    """(I/O thread) read what the pilot's agent left (in the background: a shared file system may be slow), then
    follow the pilot again if its agent lives, else end it (its unfinished tasks: interrupted)."""
    def then(traces: AgentTraces) -> None:
        try:
            follow_or_end(session, record, wires, traces, failed, cancel_reason)
        except Exception as error:  # (e.g. the client address cannot be bound): the restore says so
            log.exception("pilot %s could not be followed again", record.pilot.uid)
            failed(error)
    session._engine.in_background(lambda: AgentTraces.read(record.pilot.sandbox), then, failed)


def follow_or_end(session: Session, record: PilotRecord, wires: dict[str, dict[str, Any]], traces: AgentTraces,
                  failed: Callable[[Exception], None], cancel_reason: str | None = None) -> None:
    """(I/O thread) the pilot takes its place in the engine with what its agent left, then is followed or ended."""
    engine, pilot = session._engine, record.pilot
    record.last_seen = time.time()  # (not silent since 1970: the liveness check sees it from now on)
    engine.pilots[pilot.uid] = record
    if traces.updates:
        engine.apply_updates(record, traces.updates)
    mine = [t for t in session._tasks.values() if t.pilot == pilot.uid and not t.state.is_final]
    record.outstanding = {task.uid for task in mine}
    stopped, silence = traces.stopped, traces.silence
    # an agent that heartbeats is followed, whatever the journal last had of it (a client killed between the
    # pilot's start and the agent's hello left it SUBMITTED or BOOTSTRAPPING)
    if stopped is None and traces.gone is None and silence is not None and silence < pilot.resource.heartbeat_timeout:
        record.known_events = set()  # (its missed events are read once it greets: it may send more until then)
        follow(session, record, [wires[task.uid] for task in mine], failed)
        return
    if stopped is None and traces.gone is None and silence is None and cancel_reason is None:
        follow_unreported(session, record, [wires[task.uid] for task in mine], traces, failed)
        return
    end_found_ended(session, record, traces, cancel_reason)


def follow_unreported(session: Session, record: PilotRecord, resend: list[dict[str, Any]], traces: AgentTraces,
                      failed: Callable[[Exception], None]) -> None:
    """(I/O thread) a pilot whose agent never reported (its job was queued or bootstrapping when the client left):
    if its batch job is still there, it is followed as a new pilot is (its agent finds this client when it starts;
    the bootstrap's time limit applies, not a silent agent's); else it ends FAILED."""
    engine, pilot = session._engine, record.pilot
    local = pilot.resource.scheduler == "local"

    def job_is_there() -> bool:
        if not pilot.native_id:
            return False
        if local:  # (a local "job id" is a pid: there only if it still runs this pilot)
            return runs_local_pilot(pilot.native_id, pilot.sandbox)
        return record.adapter.attach(pilot.native_id,
                                     lambda event: engine.post(lambda: engine.lifecycle.on_job_event(record, event)))

    def decide(there: bool) -> None:
        if not there:
            end_found_ended(session, record, traces, None)
            return
        record.unreported = True
        if local:  # (its job runs: the bootstrap's time limit counts from now)
            record.job_started = time.time()
        follow(session, record, resend, failed, attach_job=False)
        log.info("pilot %s was %s when the client left: followed again as its job is still there", pilot.uid,
                 pilot.state.value)
    engine.in_background(job_is_there, decide, failed)


def end_found_ended(session: Session, record: PilotRecord, traces: AgentTraces, cancel_reason: str | None) -> None:
    """(I/O thread) end a pilot the reattach found ended (or canceling), with why; give its batch job back."""
    engine, pilot = session._engine, record.pilot
    stopped, silence = traces.stopped, traces.silence
    mark = record.profile_mark if record.profile_mark is not None else float("-inf")
    record.profile_mark = None
    engine.lifecycle.add_agent_events(record, traces.events, after=mark)
    if stopped is not None:
        state = PilotState.FAILED if stopped[0] == "FAILED" else PilotState.DONE
        reason = f"its agent ended while no client was attached: {stopped[1]}"
    elif traces.gone is not None:
        state, reason = PilotState.FAILED, f"its agent ({traces.gone}) ended while no client was attached"
    elif silence is None and cancel_reason is not None:  # (queued or starting: its job is canceled below)
        state, reason = PilotState.CANCELED, cancel_reason
    elif silence is None:
        state, reason = PilotState.FAILED, (f"it was {pilot.state.value} when the client left, and never reported; "
                                            "its batch job is gone")
    else:
        state, reason = PilotState.FAILED, f"its agent stopped answering {silence:.0f} s ago (killed, or node lost)"
    pilot.failure = pilot.failure or reason
    engine.lifecycle.end_pilot(record, state, reason)
    # a batch job still queued or running would only idle: give the allocation back (a local pilot's "job id" is
    # a pid, which the system may have given to another process since: ended only if it still runs this pilot)
    native_id = pilot.native_id
    if native_id:  # (one background call: a session closed right after still waits for it)
        record.cancel_requested = True
        engine.in_background(lambda: give_back(record, native_id))


def give_back(record: PilotRecord, native_id: str) -> None:
    """(off the I/O thread) cancel the batch job of an ended pilot if it is still there."""
    pilot = record.pilot
    if pilot.resource.scheduler == "local":  # (psij's local executor is not asked: see terminate_local)
        if runs_local_pilot(native_id, pilot.sandbox):
            log.info("pilot %s has ended: its local job (process %s) is ended", pilot.uid, native_id)
            terminate_local(int(native_id))
    elif record.adapter.attach(native_id, lambda _event: None):
        log.info("pilot %s has ended: canceling its batch job %s", pilot.uid, native_id)
        record.adapter.cancel(native_id)


def runs_local_pilot(native_id: str, sandbox: Path) -> bool:
    """Process ``native_id`` (a local pilot's job) still runs, and runs the pilot of ``sandbox`` (its command
    line names it: psij's launcher is given the job's output files there)."""
    import psutil  # (psij's own dependency)

    try:
        return str(sandbox) in " ".join(psutil.Process(int(native_id)).cmdline())
    except (psutil.Error, ValueError):
        return False


def follow(session: Session, record: PilotRecord, resend: list[dict[str, Any]],
           failed: Callable[[Exception], None], *, attach_job: bool = True) -> None:
    """(I/O thread) wait for the agent to find this client: its address in ``client.json``, the batch job
    followed again (both written off the I/O thread)."""
    engine, pilot = session._engine, record.pilot
    address = engine.endpoint_for(pilot.resource.client_address)
    record.resend = resend
    record.reattached = True

    def publish() -> None:
        write_private_file(pilot.sandbox / CLIENT_FILE, json.dumps({"address": address, "time": time.time()}))
        if attach_job and pilot.native_id and pilot.resource.scheduler != "local":  # (a local "job id" is a pid)
            record.adapter.attach(pilot.native_id,
                                  lambda event: engine.post(lambda: engine.lifecycle.on_job_event(record, event)))
    engine.in_background(publish, None, failed)
    log.info("pilot %s: waiting for its agent at %s", pilot.uid, address)


def requeue_interrupted(session: Session, wires: dict[str, dict[str, Any]]) -> int:
    """(resume, I/O thread) tasks that FAILED because their pilot ended run again: those that had not started
    always; those that had, if idempotent or with retries left. Returns how many were queued."""
    engine, now, again = session._engine, time.time(), 0
    with engine.lock:
        for task in session._tasks.values():
            if task.state is not TaskState.FAILED or task.interrupted is None:
                continue
            attempt = task.attempt
            if task.interrupted == "running":
                if not (task.description.idempotent or task.attempt < task.description.retries):
                    continue  # its reason already says its pilot ended while it ran
                attempt += 1
            engine.apply(task, task._requeue_update(now, f"resumed after: {task.reason}", attempt))
            engine.wire[task.uid] = {**wires[task.uid], "attempt": task.attempt}
            engine.pending.append(task)
            again += 1
        engine.changed.notify_all()
    return again
