"""The session's I/O thread: owns the ZeroMQ socket to the agents and applies every state change.

User threads never touch the socket; they ``post`` callables that run on this thread. The loop is one
``poll`` (agents' socket and a wake-up eventfd), then a fixed list of steps::

    handle_commands           run what user threads and psij's callbacks posted
    handle_agent_messages     hellos, task updates, heartbeats, stopping notices
    handle_bootstrap_feedback new bootstrap events of pilots not yet ACTIVE
    handle_timers             heartbeats to agents, silent agents, agents that never connect
    handle_dispatch           send tasks waiting on the client to ACTIVE pilots
    handle_journal            queue this pass's state changes and profile rows for the session's journal (one batch)

A step that raises is logged and the loop goes on. Work that may block (canceling a batch job, a pilot's
output staging) runs on a small thread pool and posts its outcome back to this thread.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import zmq
from zmq.auth.thread import ThreadAuthenticator

from scalems_like import protocol
from scalems_like.adapters import BatchAdapter, JobEvent, JobState
from scalems_like.client.feedback import FeedbackReader, describe_step_failure, tail_of
from scalems_like.client.journal import Journal
from scalems_like.client.pilot import BootstrapEvent, Pilot
from scalems_like.client.profiling import ProfileRecorder
from scalems_like.client.task import Task
from scalems_like.errors import ProtocolError, ProtocolVersionError, ScalemsError
from scalems_like.network import bind_and_advertise, message_socket
from scalems_like.protocol import curve
from scalems_like.staging.runner import outputs_for, run_directives, sandbox_roots
from scalems_like.states import PilotState, TaskState, pilot_transition_allowed

if TYPE_CHECKING:
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.client")

_FINAL = {state.value for state in TaskState if state.is_final}
CHUNK = 2000
"""Tasks per SubmitTasks message."""
FEEDBACK_INTERVAL = 0.1
"""Seconds between reads of the bootstrap events of pilots that are starting."""


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
        self.job_started: float | None = None
        self.next_feedback_read = 0.0
        self.ending: tuple[PilotState, str] | None = None
        """The final state the pilot is headed for while its output staging runs."""
        self.last_seen = 0.0
        self.outstanding: set[str] = set()
        self.stopping: tuple[str, str] | None = None
        self.cancel_requested = False


class Engine:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.lock = session._lock
        self.changed = session._changed
        self.pilots: dict[str, PilotRecord] = {}
        self.pending: collections.deque[Task] = collections.deque()
        self.wire: dict[str, dict[str, Any]] = {}
        self.commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.context: zmq.Context[zmq.Socket[bytes]] | None = None
        self.router: zmq.Socket[bytes] | None = None
        self.endpoints: dict[str, str] = {}
        self.wake_fd = -1
        self.post_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.blocking: concurrent.futures.ThreadPoolExecutor | None = None
        self.stopping = False
        self.last_heartbeat = 0.0
        self.callbacks: list[Callable[[], None]] = []
        self.client_root = Path.cwd()
        self.journal: Journal | None = None
        self.journal_batch: list[dict[str, Any]] = []
        self.profile = ProfileRecorder()
        self.hold_pending = False
        """True while a session is restored: pending tasks wait for the decision on a new pilot."""
        self.drops = protocol.DropLog(log)
        self.authenticator: ThreadAuthenticator | None = None

    # -- life cycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.context = zmq.Context()
        self.router = message_socket(self.context.socket(zmq.ROUTER))
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        keys = self.session._keys
        if keys is not None:
            curve.serve(self.router, keys.client_public, keys.client_secret)
            self.authenticator = curve.start_authenticator(self.context, {keys.agent_public},
                                                           f"session {self.session.uid}")
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.blocking = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=f"scalems-like-{self.session.uid}")
        self.thread = threading.Thread(target=self.run, name=f"scalems-like-{self.session.uid}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is None:
            return
        self.post(self._mark_stopping)
        self.thread.join()
        self.thread = None
        assert self.blocking is not None
        self.blocking.shutdown(wait=True)
        assert self.router is not None and self.context is not None
        self.router.close()
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        self.context.term()
        with self.post_lock:
            os.close(self.wake_fd)
            self.wake_fd = -1

    def _mark_stopping(self) -> None:
        """(I/O thread) under the post lock: no command can be queued after the loop's last drain."""
        with self.post_lock:
            self.stopping = True

    def post(self, command: Callable[[], None]) -> bool:
        """Run ``command`` on the I/O thread (callable from any thread); dropped (False) once the engine stopped."""
        with self.post_lock:
            if self.wake_fd < 0 or self.stopping:
                log.debug("engine stopped; dropped a late command (e.g. a batch job event after close)")
                return False
            self.commands.put(command)
            os.eventfd_write(self.wake_fd, 1)
            return True

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the I/O thread and return its result (or raise its exception).

        Called on the I/O thread itself (from a state callback), it runs ``function`` at once.
        """
        if threading.current_thread() is self.thread:
            return function()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def command() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        if not self.post(command):
            raise ScalemsError(f"session {self.session.uid} is closed")
        return future.result()

    def in_background(self, function: Callable[[], Any], then: Callable[[Any], None] | None = None,
                      failed: Callable[[Exception], None] | None = None) -> None:
        """Run blocking ``function`` off the I/O thread; ``then(result)`` runs back on the I/O thread, or
        ``failed(error)`` if it raised (so what waits for it — a pilot ending — is never left waiting)."""
        assert self.blocking is not None

        def run() -> None:
            try:
                result = function()
            except Exception as error:
                log.exception("background work failed")
                if failed is not None:
                    self.post(lambda error=error: failed(error))  # (the name ends with the except block)
                return
            if then is not None:
                self.post(lambda: then(result))
        self.blocking.submit(run)

    def cancel_job(self, record: PilotRecord) -> None:
        """Cancel the pilot's batch job (in the background: psij runs scancel/qdel)."""
        record.cancel_requested = True
        native_id = record.pilot.native_id
        if native_id:
            self.in_background(lambda: record.adapter.cancel(native_id))

    def endpoint_for(self, address: str) -> str:
        """Bind the agents' socket for ``address`` (once) and return the address agents connect to.

        ``address`` is an IP of this host, or "hostname": bind every interface, advertise this host's name.
        """
        def bind() -> str:
            assert self.router is not None
            if address not in self.endpoints:
                self.endpoints[address] = bind_and_advertise(self.router, address)
            return self.endpoints[address]
        return self.call(bind)

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> None:
        assert self.router is not None
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake_fd, zmq.POLLIN)
        steps = (self.handle_commands, self.handle_agent_messages, self.handle_bootstrap_feedback,
                 self.handle_timers, self.handle_dispatch, self.handle_journal, self.run_callbacks)
        while not self.stopping:
            events = dict(poller.poll(self.poll_timeout() * 1000))
            if self.wake_fd in events:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.wake_fd)
            for step in steps:
                if step is self.handle_agent_messages and self.router not in events:
                    continue
                try:
                    step()
                except Exception:
                    log.exception("session %s: %s failed; the session goes on", self.session.uid, step.__name__)
        self.handle_commands()  # what was posted with the stop command still runs
        self.handle_journal()

    def poll_timeout(self) -> float:
        starting = any(not r.pilot.state.is_final and r.pilot.state is not PilotState.ACTIVE
                       for r in self.pilots.values())
        interval = self.session._heartbeat_interval
        due = self.last_heartbeat + interval - time.time()
        return max(0.0, min(due, FEEDBACK_INTERVAL if starting else interval))

    def handle_commands(self) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except Exception:
                log.exception("a session command failed")

    def handle_agent_messages(self) -> None:
        assert self.router is not None
        while True:
            try:
                identity, data = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue  # not a two-frame message
            record = self.pilots.get(identity.decode(errors="replace"))
            if record is None:
                log.warning("dropped a message from unknown peer %r", identity[:40])
                continue
            try:
                message = protocol.decode(data)
            except ProtocolVersionError as error:  # its agent runs another release: say so, do not wait
                if not record.pilot.state.is_final and not record.ending:
                    self.fail_pilot(record, f"its agent cannot talk to this client: {error}")
                continue
            except ProtocolError as error:
                self.drops.dropped(f"pilot {record.pilot.uid}", error)
                continue
            record.last_seen = time.time()
            if isinstance(message, protocol.TaskUpdates):
                self.apply_updates(record, message.updates)
            elif isinstance(message, protocol.Hello):
                self.on_hello(record, message)
            elif isinstance(message, protocol.AgentStopping):
                self.on_agent_stopping(record, message)
            elif isinstance(message, protocol.BootstrapEvents):
                self.on_bootstrap_events(record, message)
            elif isinstance(message, protocol.Heartbeat):
                self.profile.clock(record.pilot.uid, message.time)
            elif isinstance(message, protocol.AgentEvents):
                self.profile.agent_events(record.pilot.uid, message.events)

    def handle_bootstrap_feedback(self) -> None:
        now = time.time()
        for record in self.pilots.values():
            starting = record.pilot.state in (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING)
            if starting and now >= record.next_feedback_read:
                record.next_feedback_read = now + FEEDBACK_INTERVAL
                self.read_feedback(record)

    def handle_timers(self) -> None:
        now = time.time()
        if now - self.last_heartbeat >= self.session._heartbeat_interval:
            self.last_heartbeat = now
            beat = protocol.encode(protocol.Heartbeat(now))
            for record in self.pilots.values():
                if record.pilot.state is PilotState.ACTIVE:
                    self.send(record, beat)
        for record in list(self.pilots.values()):
            pilot, resource = record.pilot, record.pilot.resource
            if record.ending:
                continue
            if record.reattached and not record.greeted and now - record.last_seen > resource.heartbeat_timeout:
                self.fail_pilot(record, f"its agent did not answer the reattached client within "
                                f"{resource.heartbeat_timeout:g} s (killed, or its node is lost)")
                self.cancel_job(record)
            elif pilot.state is PilotState.ACTIVE and now - record.last_seen > resource.heartbeat_timeout:
                self.fail_pilot(record, f"agent silent for {now - record.last_seen:.0f} s (no heartbeat); "
                                f"agent log ends with:\n{tail_of(pilot.sandbox / 'agent.log', 20)}")
                self.cancel_job(record)
            elif (pilot.state is PilotState.BOOTSTRAPPING and record.job_started is not None
                  and now - record.job_started > resource.agent_connect_timeout):
                step = pilot.bootstrap_step or "none reported"
                self.fail_pilot(record, f"the batch job runs but its agent did not connect within "
                                f"{resource.agent_connect_timeout:g} s (last bootstrap step: {step})")
                self.cancel_job(record)

    def handle_dispatch(self) -> None:
        active = [r for r in self.pilots.values()
                  if r.pilot.state is PilotState.ACTIVE and not r.cancel_requested and not r.ending
                  and (r.greeted or not r.reattached)]  # a reattached agent must reconnect first
        if not self.pending or not active:
            return
        now = time.time()
        while self.pending:
            record = min(active, key=lambda r: len(r.outstanding))
            batch = []
            with self.lock:
                while self.pending and len(batch) < CHUNK:
                    task = self.pending.popleft()
                    sandbox = record.pilot.sandbox / "tasks" / task.uid
                    if not self.transition(task, TaskState.SUBMITTED, "client", now, None,
                                           pilot=record.pilot.uid, sandbox=str(sandbox)):
                        continue  # canceled while waiting here
                    task.pilot = record.pilot.uid
                    task.sandbox = sandbox
                    record.outstanding.add(task.uid)
                    batch.append(self.wire.pop(task.uid))
            if batch:
                self.send(record, protocol.encode(protocol.SubmitTasks(batch)))

    def handle_journal(self) -> None:
        if self.journal_batch:
            if self.journal is not None:
                self.journal.add_updates(self.journal_batch)
            self.journal_batch = []
        self.profile.flush(self.journal)

    def on_journal_commit(self, updates: list[dict[str, Any]]) -> None:
        """(Journal thread) final results are durable: let their agents forget them."""
        uids = [update["uid"] for update in updates if update["state"] in _FINAL and update.get("host") != "client"]
        if uids:
            self.post(lambda: self.acknowledge(uids))

    def acknowledge(self, uids: list[str]) -> None:
        by_pilot: dict[str, list[str]] = {}
        tasks = self.session._tasks
        for uid in uids:
            task = tasks.get(uid)
            if task is not None and task.pilot is not None:
                by_pilot.setdefault(task.pilot, []).append(uid)
        for pilot_uid, pilot_uids in by_pilot.items():
            record = self.pilots.get(pilot_uid)
            if record is not None and record.pilot.state is PilotState.ACTIVE:
                self.send(record, protocol.encode(protocol.Acknowledge(pilot_uids)))

    def save_pilot(self, record: PilotRecord) -> None:
        pilot = record.pilot
        if self.journal is not None:
            self.journal.save_pilot((pilot.uid, record.description_pickle, pilot.resource.name, str(pilot.sandbox),
                                     pilot.native_id, pilot.state.value, pilot.failure))

    # -- applying what happened ----------------------------------------------------------------------
    def apply_updates(self, record: PilotRecord, updates: list[dict[str, Any]]) -> None:
        tasks = self.session._tasks
        with self.lock:
            for update in updates:
                task = tasks.get(update.get("uid")) if isinstance(update, dict) else None
                if task is None:
                    continue
                state = task._apply(update)
                if state is None:
                    continue  # stale, or delivered again after a reattach
                self.journal_batch.append(update)
                if state.is_final:
                    record.outstanding.discard(task.uid)
                self.queue_callbacks(task, state)
            self.changed.notify_all()

    def on_hello(self, record: PilotRecord, hello: protocol.Hello) -> None:
        pilot = record.pilot
        pilot.nodes = [(str(n[0]), int(n[1]), int(n[2])) for n in hello.nodes]
        pilot.agent_host, pilot.agent_pid = hello.host, hello.pid
        record.greeted = True
        self.profile.agent_hello(pilot.uid, hello.host, hello.time, hello.nodes)
        with self.lock:
            self.changed.notify_all()
        self.read_feedback(record)
        if record.resend:  # a reattached client: what it sent before may not have arrived
            self.send(record, protocol.encode(protocol.SubmitTasks(record.resend)))
            record.resend = []
        self.set_pilot_state(record, PilotState.ACTIVE, hello.host, hello.time)
        log.info("pilot %s ACTIVE on %s: %s", pilot.uid, hello.host, pilot.nodes)

    def on_bootstrap_events(self, record: PilotRecord, message: protocol.BootstrapEvents) -> None:
        """Events the agent forwards: add those the sandbox file did not show this client."""
        known = set(record.pilot.bootstrap_events)
        for fields in message.events:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                event = BootstrapEvent((float(fields[0]), str(fields[1]), str(fields[2]), int(fields[3])))
                if event not in known:
                    record.pilot.bootstrap_events.append(event)
                    self.profile.bootstrap(record.pilot.uid, [event])
        record.pilot.bootstrap_events.sort(key=lambda event: event.time)

    def on_agent_stopping(self, record: PilotRecord, message: protocol.AgentStopping) -> None:
        record.stopping = (message.final_state, message.reason)
        self.profile.pilot_event(record.pilot.uid, "agent_stopping", message.reason)
        if record.cancel_requested:
            self.end_pilot(record, PilotState.CANCELED, "canceled by the user")
        elif message.final_state == "FAILED":
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
        self.handle_agent_messages()  # the agent's last words (AgentStopping) may still wait in the socket
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
        events = record.feedback.read_new()
        if not events:
            return
        pilot = record.pilot
        pilot.bootstrap_events.extend(events)
        self.profile.bootstrap(pilot.uid, events)
        if pilot.state is PilotState.SUBMITTED:
            self.set_pilot_state(record, PilotState.BOOTSTRAPPING, "batch", events[0].time)
            record.job_started = record.job_started or time.time()
        for event in events:
            if event.state == "failed":
                self.fail_pilot(record, describe_step_failure(record.feedback, event))
                return
        self.notify_pilot(pilot)

    def set_pilot_state(self, record: PilotRecord, state: PilotState, host: str, when: float) -> bool:
        pilot = record.pilot
        with self.lock:
            if not pilot_transition_allowed(pilot.state, state):
                return False
            pilot.state = state
            pilot.history.append((state, when, host))
            self.changed.notify_all()
        self.profile.pilot_state(pilot.uid, state.value, host, when, pilot.failure if state.is_final else None)
        self.save_pilot(record)
        self.notify_pilot(pilot)
        return True

    def notify_pilot(self, pilot: Pilot) -> None:
        state = pilot.state
        self.callbacks.extend(lambda c=c: c(pilot, state) for c in pilot._callbacks)

    def fail_pilot(self, record: PilotRecord, failure: str) -> None:
        if record.pilot.state.is_final or record.ending:
            return
        record.pilot.failure = failure
        log.error("pilot %s FAILED: %s", record.pilot.uid, failure)
        self.end_pilot(record, PilotState.FAILED, failure)

    def end_pilot(self, record: PilotRecord, state: PilotState, reason: str) -> None:
        """End the pilot: its unfinished tasks fail (or are canceled) with the reason; its output directives
        run in the background, and the pilot reaches ``state`` once they are done."""
        pilot = record.pilot
        if pilot.state.is_final or record.ending:
            return
        record.ending = (state, reason)
        first_line = reason.splitlines()[0] if reason else state.value
        why = f"pilot {pilot.uid} ended {state.value}: {first_line}"
        if state is PilotState.CANCELED:
            self.end_tasks(list(record.outstanding), TaskState.CANCELED, why)
        else:
            self.interrupt_tasks(list(record.outstanding), why)
        record.outstanding.clear()
        self.fail_pending_without_pilots(f"pilot {pilot.uid} ended {state.value}: {first_line}")
        outcome = {PilotState.DONE: "DONE", PilotState.FAILED: "FAILED"}.get(state, "CANCELED")
        directives = outputs_for(pilot.description.output_staging, outcome)
        if not directives:
            self.set_pilot_state(record, state, "client", time.time())
            return
        roots = {**sandbox_roots(pilot.sandbox), "client": self.client_root}

        def staged(failure: str | None) -> None:
            if failure is not None:
                log.error("pilot %s: %s", pilot.uid, failure)
                pilot.staging_failure = failure
            self.set_pilot_state(record, state, "client", time.time())
        self.in_background(lambda: run_directives(directives, roots, "output"), staged,
                           lambda error: staged(f"output staging failed: {type(error).__name__}: {error}"))

    def fail_pending_without_pilots(self, why: str) -> None:
        """Tasks waiting on the client fail when no pilot that could run them is left."""
        if not self.pending or not self.session._pilots or self.hold_pending:
            return  # (no pilot yet: tasks wait for the first one)
        if any(not r.pilot.state.is_final and not r.ending for r in self.pilots.values()):
            return
        uids = [task.uid for task in self.pending]
        self.pending.clear()
        self.end_tasks(uids, TaskState.FAILED, f"no live pilot to run it: {why}")

    def stop_pilot(self, record: PilotRecord, reason: str, *, cancel: bool) -> None:
        """Ask an ACTIVE pilot's agent to shut down, or cancel the batch job of a pilot that is not ACTIVE.

        ``cancel``: the pilot ends CANCELED (else DONE, once its agent has stopped).
        """
        if cancel:
            record.cancel_requested = True
        self.profile.pilot_event(record.pilot.uid, "shutdown_requested", reason)
        if record.pilot.state is PilotState.ACTIVE:
            self.send(record, protocol.encode(protocol.Shutdown(reason)))
        elif not record.pilot.state.is_final and not record.ending:
            self.cancel_job(record)
            if record.pilot.state is PilotState.NEW or not record.pilot.native_id:
                self.end_pilot(record, PilotState.CANCELED, reason)

    def end_tasks(self, uids: list[str], state: TaskState, reason: str) -> None:
        now = time.time()
        tasks = self.session._tasks
        with self.lock:
            for uid in uids:
                if self.transition(tasks[uid], state, "client", now, reason):
                    self.wire.pop(uid, None)
            self.changed.notify_all()

    def interrupt_tasks(self, uids: list[str], reason: str) -> None:
        """Tasks whose pilot ended under them: FAILED, marked so that ``Session.resume`` can run them again."""
        now = time.time()
        with self.lock:
            for uid in uids:
                task = self.session._tasks[uid]
                interrupted = "running" if task.state is TaskState.RUNNING else "queued"
                if self.transition(task, TaskState.FAILED, "client", now, reason, interrupted=interrupted):
                    task.interrupted = interrupted
            self.changed.notify_all()

    def transition(self, task: Task, state: TaskState, host: str, when: float, reason: str | None = None,
                   **journaled: Any) -> bool:
        """A state change decided on the client (not reported by an agent); False if not allowed."""
        if not task._set_state(state, host, when, reason):
            return False
        update = {"uid": task.uid, "state": state.value, "time": when, "host": host, **journaled}
        if reason is not None:
            update["reason"] = reason
        self.journal_batch.append(update)
        self.queue_callbacks(task, state)
        return True

    def queue_callbacks(self, task: Task, state: TaskState) -> None:
        if task._callbacks:
            self.callbacks.extend(lambda c=c: c(task, state) for c in task._callbacks)

    def run_callbacks(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a state callback raised")

    def send(self, record: PilotRecord, data: bytes) -> None:
        assert self.router is not None
        try:
            self.router.send_multipart([record.pilot.uid.encode(), data])
        except zmq.ZMQError as error:  # the agent is not (or no longer) connected
            log.warning("could not send to pilot %s: %s", record.pilot.uid, error)
