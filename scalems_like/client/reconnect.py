"""Reattach and resume, the I/O thread's part: tasks and pilots of a restored session put back into the engine.

Run for :mod:`scalems_like.client.restore` through the :class:`~scalems_like.client.engine.Engine`'s command API
(``restore_unsent``, ``follow_again``, ``requeue_interrupted``); everything here but :func:`settle_pilots` (which
waits on the caller's thread) runs on the engine's I/O thread, and what may block (reading a pilot sandbox, asking
the batch system about a job) in its background pool.

- Tasks the journal left unfinished under a pilot it has final end as that pilot's end would have ended them
  (:func:`end_orphans`); tasks never sent wait for a pilot, or end CANCELED when the session is canceled.
- Each pilot that was not final: the updates in its agent's journal, and whether its agent is alive
  (:class:`AgentTraces`). Live pilots are followed again (:func:`follow`: the client's address in
  ``client.json``, where the agent finds it); a pilot whose agent never reported is followed while its batch job is
  there (:func:`follow_unreported`); the others end with their agent's own reason (:func:`end_found_ended`).
- ``resume``: interrupted tasks run again (:func:`requeue_interrupted`).
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalems_like.adapters.psij_adapter import terminate_local
from scalems_like.client.pilot_lifecycle import PilotRecord
from scalems_like.errors import ScalemsError, WaitTimeout
from scalems_like.paths import write_private_file
from scalems_like.protocol.records import (
    CLIENT_FILE,
    FILE_NAME,
    read_alive,
    read_journal,
    read_stopped,
    seconds_since_alive,
)
from scalems_like.states import PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.engine import Engine

log = logging.getLogger("scalems_like.client")


def restore_unsent(engine: Engine, wires: dict[str, dict[str, Any]], cancel_reason: str | None) -> None:
    """Tasks the journal left NEW wait for a pilot again (held until the restore decides on a new pilot), or end
    CANCELED with ``cancel_reason``; then the orphans end (see :func:`end_orphans`)."""
    unsent = [task for task in engine.tasks.values() if task.state is TaskState.NEW]
    if cancel_reason is not None:  # (never dispatched to a pilot that greets)
        engine.end_tasks([task.uid for task in unsent], TaskState.CANCELED, cancel_reason)
        end_orphans(engine)
        return
    engine.hold_pending = True  # until we know whether a new pilot comes
    for task in unsent:
        engine.wire[task.uid] = {**wires[task.uid], "attempt": task.attempt}
    engine.pending.extend(unsent)
    end_orphans(engine)


def end_orphans(engine: Engine) -> None:
    """(I/O thread) tasks the journal left unfinished under a pilot it has final end as that pilot's end ended
    them live (the client died after the pilot's row was committed, before its tasks' ends were)."""
    orphans: dict[str, list[str]] = {}
    for task in engine.tasks.values():
        if task.pilot is not None and not task.state.is_final:
            orphans.setdefault(task.pilot, []).append(task.uid)
    for pilot_uid, uids in orphans.items():
        pilot = engine.pilots.get(pilot_uid)
        if pilot is None or not pilot.state.is_final:
            continue
        why = f"pilot {pilot.uid} ended {pilot.state.value}"
        why += f": {pilot.failure.splitlines()[0]}" if pilot.failure else " (the journal has no end for this task)"
        if pilot.state is PilotState.CANCELED:
            engine.end_tasks(uids, TaskState.CANCELED, why)
        else:
            engine.interrupt_tasks(uids, why)



def settle_pilots(engine: Engine, wires: dict[str, dict[str, Any]], marks: dict[str, float],
                  cancel_reason: str | None = None) -> None:
    """Follow again, or end, every pilot the journal left non-final; wait until each agent greeted or was found
    gone. ``marks``: the latest agent time the journal's profile has of each pilot. Raises ScalemsError naming the
    pilots whose sandbox could not be looked at. (The caller's thread: it waits; the work runs on the I/O thread.)"""
    records = [PilotRecord(pilot, engine.adapter(pilot.resource, pilot.sandbox.parent))
               for pilot in engine.pilot_list() if not pilot.state.is_final]
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
        engine.call(functools.partial(reconnect_or_end, engine, record, wires, failed(record), cancel_reason))
    patience = max([r.pilot.resource.heartbeat_timeout for r in records], default=0) + 5

    def settled() -> bool:  # every followed agent has greeted the new client, or was found gone
        return bool(problems) or all(r.greeted or r.ending or r.unreported or r.pilot.state.is_final
                                     for r in records)
    try:
        engine.wait_for(settled, patience, lambda: "")
    except WaitTimeout:
        log.warning("session %s: not every pilot settled within %g s of the reattach", engine.uid, patience)
    if problems:
        raise ScalemsError("; ".join(problems))



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


def reconnect_or_end(engine: Engine, record: PilotRecord, wires: dict[str, dict[str, Any]],
                     failed: Callable[[Exception], None], cancel_reason: str | None = None) -> None:
    """(I/O thread) read what the pilot's agent left (in the background: a shared file system may be slow), then
    follow the pilot again if its agent lives, else end it (its unfinished tasks: interrupted)."""
    def then(traces: AgentTraces) -> None:
        try:
            follow_or_end(engine, record, wires, traces, failed, cancel_reason)
        except Exception as error:  # (e.g. the client address cannot be bound): the restore says so
            log.exception("pilot %s could not be followed again", record.pilot.uid)
            failed(error)
    engine.in_background(lambda: AgentTraces.read(record.pilot.sandbox), then, failed)


def follow_or_end(engine: Engine, record: PilotRecord, wires: dict[str, dict[str, Any]], traces: AgentTraces,
                  failed: Callable[[Exception], None], cancel_reason: str | None = None) -> None:
    """(I/O thread) the pilot takes its place in the engine with what its agent left, then is followed or ended."""
    pilot = record.pilot
    record.last_seen = time.time()  # (not silent since 1970: the liveness check sees it from now on)
    engine.records[pilot.uid] = record
    if traces.updates:
        engine.apply_updates(record, traces.updates)
    mine = [t for t in engine.tasks.values() if t.pilot == pilot.uid and not t.state.is_final]
    record.outstanding = {task.uid for task in mine}
    stopped, silence = traces.stopped, traces.silence
    # an agent that heartbeats is followed, whatever the journal last had of it (a client killed between the
    # pilot's start and the agent's hello left it SUBMITTED or BOOTSTRAPPING)
    if stopped is None and traces.gone is None and silence is not None and silence < pilot.resource.heartbeat_timeout:
        record.known_events = set()  # (its missed events are read once it greets: it may send more until then)
        follow(engine, record, [wires[task.uid] for task in mine], failed)
        return
    if stopped is None and traces.gone is None and silence is None and cancel_reason is None:
        follow_unreported(engine, record, [wires[task.uid] for task in mine], traces, failed)
        return
    end_found_ended(engine, record, traces, cancel_reason)


def follow_unreported(engine: Engine, record: PilotRecord, resend: list[dict[str, Any]], traces: AgentTraces,
                      failed: Callable[[Exception], None]) -> None:
    """(I/O thread) a pilot whose agent never reported (its job was queued or bootstrapping when the client left):
    if its batch job is still there, it is followed as a new pilot is (its agent finds this client when it starts;
    the bootstrap's time limit applies, not a silent agent's); else it ends FAILED."""
    pilot = record.pilot
    local = pilot.resource.scheduler == "local" and not pilot.resource.login  # (a remote one's: its gateway's)

    def job_is_there() -> bool:
        if not pilot.native_id:
            return False
        if local:  # (a local "job id" is a pid: there only if it still runs this pilot)
            return runs_local_pilot(pilot.native_id, pilot.sandbox)
        return record.adapter.attach(pilot.native_id, engine.job_events(record))

    def decide(there: bool) -> None:
        if not there:
            end_found_ended(engine, record, traces, None)
            return
        record.unreported = True
        if local:  # (its job runs: the bootstrap's time limit counts from now)
            record.job_started = time.time()
        follow(engine, record, resend, failed, attach_job=False)
        log.info("pilot %s was %s when the client left: followed again as its job is still there", pilot.uid,
                 pilot.state.value)
    engine.in_background(job_is_there, decide, failed)


def end_found_ended(engine: Engine, record: PilotRecord, traces: AgentTraces, cancel_reason: str | None) -> None:
    """(I/O thread) end a pilot the reattach found ended (or canceling), with why; give its batch job back."""
    pilot = record.pilot
    stopped, silence = traces.stopped, traces.silence
    mark = record.profile_mark if record.profile_mark is not None else float("-inf")
    record.profile_mark = None
    engine.lifecycle.add_agent_events(record, traces.events, after=mark)
    if stopped is not None:
        state = PilotState.FAILED if stopped[0] == PilotState.FAILED else PilotState.DONE
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
    if pilot.resource.scheduler == "local" and not pilot.resource.login:  # (not psij's: see terminate_local)
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


def follow(engine: Engine, record: PilotRecord, resend: list[dict[str, Any]],
           failed: Callable[[Exception], None], *, attach_job: bool = True) -> None:
    """(I/O thread) wait for the agent to find this client: its address in ``client.json``, the batch job
    followed again (both written off the I/O thread)."""
    pilot = record.pilot
    remote = engine.connected_gateway(pilot.resource.name) if pilot.resource.login else None
    if pilot.resource.login and remote is None:  # (the restore attached it; a lost connection since: say so)
        failed(ScalemsError(f"resource {pilot.resource.name!r}: not connected to the gateway"))
        return
    address = remote.agent_address if remote else engine.endpoint_for(pilot.resource.client_address)
    record.resend = resend
    record.reattached = True

    def publish() -> None:
        text = json.dumps({"address": address, "time": time.time()})
        if remote is not None:  # in the sandbox on the cluster, where the agent reads it
            remote.write(pilot.uid, CLIENT_FILE, text.encode())
        else:
            write_private_file(pilot.sandbox / CLIENT_FILE, text)
        local = pilot.resource.scheduler == "local" and remote is None  # (a local "job id" is a pid)
        if attach_job and pilot.native_id and not local:
            record.adapter.attach(pilot.native_id, engine.job_events(record))
    engine.in_background(publish, None, failed)
    log.info("pilot %s: waiting for its agent at %s", pilot.uid, address)



def requeue_interrupted(engine: Engine, wires: dict[str, dict[str, Any]]) -> int:
    """(resume, I/O thread) tasks that FAILED because their pilot ended run again: those that had not started
    always; those that had, if idempotent or with retries left. Returns how many were queued."""
    now, again = time.time(), 0
    with engine.lock:
        for task in engine.tasks.values():
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
