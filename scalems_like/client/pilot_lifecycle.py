"""A pilot's life cycle as the client's I/O thread sees it: what its batch job, its bootstrap feedback and its
agent report become in the pilot's state, and how a pilot ends.

    NEW → SUBMITTED (batch id) → BOOTSTRAPPING (job runs, bootstrap steps) → ACTIVE (agent said hello)
        → DONE / FAILED / CANCELED (agent stopping, batch job ended, agent silent, never connected, canceled)

Ending a pilot ends its unfinished tasks with the pilot's reason and runs its output staging (off the I/O thread)
before the pilot reaches its final state. The :class:`~scalems_like.client.engine.Engine` owns the loop and the
socket and hands every pilot event to its :class:`PilotLifecycle`; everything here runs on the I/O thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import cloudpickle

from scalems_like import protocol
from scalems_like.adapters import BatchAdapter, JobEvent, JobState
from scalems_like.client.feedback import FeedbackReader, describe_step_failure, tail_of
from scalems_like.client.pilot import BootstrapEvent, NodeReadiness, Pilot
from scalems_like.protocol.records import FILE_NAME as AGENT_JOURNAL
from scalems_like.protocol.records import read_journal
from scalems_like.staging.runner import outputs_for, run_directives, sandbox_roots
from scalems_like.states import PilotState, TaskState, pilot_transition_allowed

if TYPE_CHECKING:
    from scalems_like.client.engine_loop import EngineLoop

log = logging.getLogger("scalems_like.client")


class PilotRecord:
    """What the engine tracks of a pilot beyond its public handle."""

    def __init__(self, pilot: Pilot, adapter: BatchAdapter) -> None:
        self.pilot = pilot
        self.adapter = adapter
        self.description_pickle = cloudpickle.dumps(pilot.description)
        self.resend: list[dict[str, Any]] = []
        """Task mappings to send again when the agent greets a reattached client (it drops those it knows)."""
        self.greeted = False
        """The agent said hello to this client (after a reattach: it found the new address)."""
        self.reattached = False
        """Followed again by a reattached client: tasks wait until its agent greets."""
        self.feedback = FeedbackReader(pilot.sandbox)
        self.unreported = False
        """Followed again by a reattached client although its agent never reported (queued or bootstrapping when
        the client left): waited for as a new pilot is, not as a silent agent."""
        self.job_started: float | None = None
        self.next_feedback_read = 0.0
        self.ending: tuple[PilotState, str] | None = None
        """The final state the pilot is headed for while its output staging runs."""
        self.last_seen = 0.0
        self.outstanding: set[str] = set()
        """Tasks sent to this pilot and not yet final."""
        self.unacknowledged: set[str] = set()
        """Tasks this pilot's agent ended whose end it was not yet told is journaled (it keeps them till then)."""
        self.window = 0
        """The agent's task window (its TaskWindow; 0 until it says). The pilot's credit, how many more tasks may
        be sent to it, is the window minus its outstanding and unacknowledged tasks (see :meth:`credit`)."""
        self.cancel_requested = False
        self.cancel_reason = "canceled by the user"
        """Why the pilot ends CANCELED once its agent stopped after a cancel (see ``stop_pilot``)."""
        self.profile_mark: float | None = None
        """Followed again by a reattached client: the latest agent time the journal's profile had for this pilot;
        when the agent greets, the agent events after it are taken from the agent's journal."""
        self.known_events: set[tuple[Any, ...]] | None = None
        """Followed again by a reattached client: every agent event the profile got since (over the socket, or
        from the agent's journal by the catch-up), so that none is added twice, whichever way it came first."""

    @property
    def credit(self) -> int:
        """How many more tasks may be sent to this pilot's agent now (flow control: see the engine)."""
        return self.window - len(self.outstanding) - len(self.unacknowledged)


class PilotLifecycle:
    """The pilot state changes of one session's engine (I/O thread only)."""

    def __init__(self, engine: EngineLoop) -> None:
        self.engine = engine

    # -- what the pilot's agent, bootstrap and batch job report --------------------------------------
    def on_hello(self, record: PilotRecord, hello: protocol.Hello) -> None:
        engine, pilot = self.engine, record.pilot
        pilot.nodes = [(str(n[0]), int(n[1]), int(n[2])) for n in hello.nodes]
        pilot.agent_host, pilot.agent_pid = hello.host, hello.pid
        record.greeted = True
        engine.profile.agent_hello(pilot.uid, hello.host, hello.time, hello.nodes)
        with engine.lock:
            engine.changed.notify_all()
        self.read_feedback(record)
        if record.resend:  # a reattached client: what it sent before may not have arrived
            engine.send(record, protocol.encode(protocol.SubmitTasks(record.resend)))
            record.resend = []
        self.set_pilot_state(record, PilotState.ACTIVE, hello.host, hello.time)
        log.info("pilot %s ACTIVE on %s: %s", pilot.uid, hello.host, pilot.nodes)
        if record.profile_mark is not None:
            self.catch_up_agent_events(record, record.profile_mark)
            record.profile_mark = None

    def catch_up_agent_events(self, record: PilotRecord, mark: float) -> None:
        """(a reattached agent greeted) the agent events it journaled after ``mark`` and sent while no client
        listened go into the profile; those that came over the socket meanwhile are there already."""
        def failed(error: Exception) -> None:
            log.warning("pilot %s: agent events while no client listened are not in the profile: %s",
                        record.pilot.uid, error)
        journal = record.pilot.sandbox / AGENT_JOURNAL
        self.engine.in_background(lambda: read_journal(journal)[1],
                                  lambda events: self.add_agent_events(record, events, after=mark), failed)

    def on_agent_events(self, record: PilotRecord, message: protocol.AgentEvents) -> None:
        self.add_agent_events(record, message.events)

    def add_agent_events(self, record: PilotRecord, events: list[list[Any]], after: float | None = None) -> None:
        """Agent events into the profile (``after``: only those stamped later); once reattached, each only once."""
        if after is not None:
            events = [event for event in events if float(event[0]) > after]
        if record.known_events is not None:
            events = [event for event in events if tuple(event) not in record.known_events]
            record.known_events.update(tuple(event) for event in events)
        self.engine.profile.agent_events(record.pilot.uid, events)

    def on_nodes_ready(self, record: PilotRecord, message: protocol.NodesReady) -> None:
        """How much of the pilot serves (the nodes that changed): into ``Pilot.readiness``, waiters woken, and a
        ``readiness`` row (``READY/CORES``) into the profile."""
        engine, pilot = self.engine, record.pilot
        with engine.lock:
            for name, ready, cores, out in message.nodes:
                pilot.readiness[name] = NodeReadiness(name, ready, cores, out or None)
            engine.changed.notify_all()
        total = sum(node.cores for node in pilot.readiness.values())
        ready = sum(node.ready_cores for node in pilot.readiness.values())
        engine.profile.add(message.time, pilot.uid, "readiness", pilot.agent_host or "", "cores", pilot.uid,
                           detail=f"{ready}/{total}")
        for name, _ready, _cores, out in message.nodes:
            if out:
                log.warning("pilot %s: node %s is out of the schedule: %s", pilot.uid, name, out)

    def on_bootstrap_events(self, record: PilotRecord, message: protocol.BootstrapEvents) -> None:
        """Events the agent forwards: add those the sandbox file did not show this client."""
        known = set(record.pilot.bootstrap_events)
        for fields in message.events:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                event = BootstrapEvent((float(fields[0]), str(fields[1]), str(fields[2]), int(fields[3])))
                if event not in known:
                    record.pilot.bootstrap_events.append(event)
                    self.engine.profile.bootstrap(record.pilot.uid, [event])
        record.pilot.bootstrap_events.sort(key=lambda event: event.time)

    def on_agent_stopping(self, record: PilotRecord, message: protocol.AgentStopping) -> None:
        self.engine.profile.pilot_event(record.pilot.uid, "agent_stopping", message.reason)
        if record.cancel_requested:
            self.end_pilot(record, PilotState.CANCELED, record.cancel_reason)
        elif message.final_state == PilotState.FAILED:
            self.fail_pilot(record, message.reason)
        else:
            self.end_pilot(record, PilotState.DONE, message.reason)

    def on_job_event(self, record: PilotRecord, event: JobEvent) -> None:
        pilot = record.pilot
        log.info("pilot %s: batch job %s %s", pilot.uid, event.state.value, event.message or "")
        if pilot.state is PilotState.NEW:  # psij may report the job before submit() returns
            self.set_pilot_state(record, PilotState.SUBMITTED, "batch", event.time)
        if event.state is JobState.RUNNING:
            record.job_started = record.job_started or time.time()
            self.set_pilot_state(record, PilotState.BOOTSTRAPPING, "batch", event.time)
        if not event.state.is_final or pilot.state.is_final or record.ending:
            return
        self.engine.job_ends.append((record, event))  # after the agent's last words (AgentStopping), if it sent any

    def on_job_end(self, record: PilotRecord, event: JobEvent) -> None:
        """(the engine's ``handle_job_ends``, once the socket was read) the pilot's batch job ended."""
        pilot = record.pilot
        if pilot.state.is_final or record.ending:
            return
        self.read_feedback(record)
        if pilot.state.is_final:  # the feedback said why
            return
        if record.cancel_requested or event.state is JobState.CANCELED:
            self.end_pilot(record, PilotState.CANCELED, event.message or "batch job canceled")
            return
        self.fail_pilot(record, self.explain_job_end(record, event))

    def explain_job_end(self, record: PilotRecord, event: JobEvent) -> str:
        pilot = record.pilot
        when = "while the agent ran" if pilot.state is PilotState.ACTIVE else "before the agent connected"
        code = "" if event.exit_code is None else f", exit code {event.exit_code}"
        text = f"batch job {event.state.value.lower()}{code} {when}"
        if event.message:
            text += f": {event.message.strip()}"
        if pilot.bootstrap_events and pilot.state is not PilotState.ACTIVE:
            last = pilot.bootstrap_events[-1]
            text += f"; last bootstrap step: {last.step} ({last.state})"
        for name in ("bootstrap/agent.log", "agent.log", "job.err"):
            tail = tail_of(pilot.sandbox / name, 20)
            if tail:
                text += f"\n{name} ends with:\n{tail}"
        return text

    def read_feedback(self, record: PilotRecord) -> None:
        pilot = record.pilot
        events = record.feedback.read_new()
        if events and pilot.bootstrap_events:  # a reattached client reads the file again from its start
            known = set(pilot.bootstrap_events)
            events = [event for event in events if event not in known]
        if not events:
            return
        pilot.bootstrap_events.extend(events)
        self.engine.profile.bootstrap(pilot.uid, events)
        if pilot.state is PilotState.SUBMITTED:
            self.set_pilot_state(record, PilotState.BOOTSTRAPPING, "batch", events[0].time)
            record.job_started = record.job_started or time.time()
        for event in events:
            if event.state == "failed" and record.cancel_requested:  # the cancel's SIGTERM ended the step
                self.end_pilot(record, PilotState.CANCELED, f"canceled during bootstrap step '{event.step}'")
                return
            if event.state == "failed":
                self.fail_pilot(record, describe_step_failure(record.feedback, event))
                return
        self.notify_pilot(pilot)

    def check_liveness(self, record: PilotRecord, now: float) -> None:
        """Fail a pilot (and cancel its batch job) whose agent is silent, did not answer a reattached client, or
        did not connect although its batch job runs."""
        pilot, resource = record.pilot, record.pilot.resource
        if not record.adapter.reachable:  # (a remote resource's connection was lost: detached from its pilots)
            return
        if (record.reattached and not record.greeted and not record.unreported
                and now - record.last_seen > resource.heartbeat_timeout):
            self.fail_pilot(record, f"its agent did not answer the reattached client within "
                            f"{resource.heartbeat_timeout:g} s (killed, or its node is lost)")
            self.cancel_job(record)
        elif pilot.state is PilotState.ACTIVE and now - record.last_seen > resource.heartbeat_timeout:
            self.fail_pilot(record, f"agent silent for {now - record.last_seen:.0f} s (no heartbeat); "
                            f"agent log ends with:\n{tail_of(pilot.sandbox / 'agent.log', 20)}")
            self.cancel_job(record)
        elif (pilot.state in (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING) and record.job_started is not None
              and now - record.job_started > resource.agent_connect_timeout):
            step = pilot.bootstrap_step or "none reported"
            self.fail_pilot(record, f"the batch job runs but its agent did not connect within "
                            f"{resource.agent_connect_timeout:g} s (last bootstrap step: {step})")
            self.cancel_job(record)

    # -- state changes -------------------------------------------------------------------------------
    def set_pilot_state(self, record: PilotRecord, state: PilotState, host: str, when: float) -> bool:
        engine, pilot = self.engine, record.pilot
        with engine.lock:
            if not pilot_transition_allowed(pilot.state, state):
                return False
            pilot.state = state
            pilot.history.append((state, when, host))
            engine.changed.notify_all()
        engine.profile.pilot_state(pilot.uid, state.value, host, when, pilot.failure if state.is_final else None)
        self.save_pilot(record)
        self.notify_pilot(pilot)
        return True

    def save_pilot(self, record: PilotRecord) -> None:
        """Queue the pilot's row behind the task updates applied before it (the journal commits in queue order):
        the journal never holds a pilot's end without the ends it gave its tasks."""
        pilot, journal = record.pilot, self.engine.journal
        if journal is not None:
            self.engine.handle_journal()
            journal.save_pilot((pilot.uid, record.description_pickle, pilot.resource.name, str(pilot.sandbox),
                                pilot.native_id, pilot.state.value, pilot.failure))

    def notify_pilot(self, pilot: Pilot) -> None:
        state = pilot.state
        self.engine.callbacks.extend(functools.partial(callback, pilot, state) for callback in pilot._callbacks)

    def fail_pilot(self, record: PilotRecord, failure: str) -> None:
        if record.pilot.state.is_final or record.ending:
            return
        record.pilot.failure = failure
        log.error("pilot %s FAILED: %s", record.pilot.uid, failure)
        self.end_pilot(record, PilotState.FAILED, failure)

    def end_pilot(self, record: PilotRecord, state: PilotState, reason: str) -> None:
        """End the pilot: its unfinished tasks fail (or are canceled) with the reason; its output directives
        run in the background, and the pilot reaches ``state`` once they are done."""
        engine, pilot = self.engine, record.pilot
        if pilot.state.is_final or record.ending:
            return
        record.ending = (state, reason)
        if state is PilotState.CANCELED and pilot.failure is None:  # (the journal's row says why it ended)
            pilot.failure = reason
        first_line = reason.splitlines()[0] if reason else state.value
        why = f"pilot {pilot.uid} ended {state.value}: {first_line}"
        if state is PilotState.CANCELED:
            engine.end_tasks(list(record.outstanding), TaskState.CANCELED, why)
        else:
            engine.interrupt_tasks(list(record.outstanding), why)
        record.outstanding.clear()
        engine.fail_pending_without_pilots(f"pilot {pilot.uid} ended {state.value}: {first_line}")
        outcome = {PilotState.DONE: TaskState.DONE, PilotState.FAILED: TaskState.FAILED}.get(state, TaskState.CANCELED)
        directives = outputs_for(pilot.description.output_staging, outcome)
        if not directives:
            self.set_pilot_state(record, state, "client", time.time())
            return
        roots = {**sandbox_roots(pilot.sandbox), "client": engine.client_root}

        def staged(failure: str | None) -> None:
            if failure is not None:
                log.error("pilot %s: %s", pilot.uid, failure)
                pilot.staging_failure = failure
            self.set_pilot_state(record, state, "client", time.time())

        def stage() -> str | None:
            link = engine.gateways.get(pilot.resource.name) if pilot.resource.login else None
            if link is None:
                return run_directives(directives, roots, "output")
            link.stage(directives, engine.client_root, pilot.uid)  # (from the cluster, over ssh)
            return None
        engine.in_background(stage, staged,
                             lambda error: staged(f"output staging failed: {type(error).__name__}: {error}"))

    def stop_pilot(self, record: PilotRecord, reason: str, *, cancel: bool) -> None:
        """Ask an ACTIVE pilot's agent to shut down, or cancel the batch job of a pilot that is not ACTIVE.

        ``cancel``: the pilot ends CANCELED with ``reason`` (else DONE, once its agent has stopped).
        """
        if cancel:
            record.cancel_requested = True
            record.cancel_reason = reason
        self.engine.profile.pilot_event(record.pilot.uid, "shutdown_requested", reason)
        if record.pilot.state is PilotState.ACTIVE:
            self.engine.send(record, protocol.encode(protocol.Shutdown(reason)))
        elif not record.pilot.state.is_final and not record.ending:
            self.cancel_job(record)
            if record.pilot.state is PilotState.NEW or not record.pilot.native_id:
                self.end_pilot(record, PilotState.CANCELED, reason)

    def cancel_job(self, record: PilotRecord) -> None:
        """Cancel the pilot's batch job (in the background: psij runs scancel/qdel)."""
        record.cancel_requested = True
        native_id = record.pilot.native_id
        if native_id:
            self.engine.in_background(lambda: record.adapter.cancel(native_id))
