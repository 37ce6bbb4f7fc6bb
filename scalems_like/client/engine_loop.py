"""The engine's loop: one ``poll`` (the agents' socket and a wake-up eventfd), then a fixed list of steps::

    handle_commands           run what user threads and psij's callbacks posted
    handle_agent_messages     hellos, task updates, nodes ready, heartbeats, stopping notices
    handle_job_ends           batch jobs that ended (after the messages their agents sent before they ended)
    handle_bootstrap_feedback new bootstrap events of pilots not yet ACTIVE
    handle_timers             heartbeats to agents, silent agents, agents that never connect
    handle_dispatch           send tasks waiting on the client to ACTIVE pilots, as far as their credit goes
    handle_journal            queue this pass's state changes and profile rows for the session's journal (one batch)

A step that raises is logged and the loop goes on. Work that may block (canceling a batch job, a pilot's
output staging) runs on a small thread pool and posts its outcome back to this thread. :class:`EngineLoop` also
holds the engine's state (every field is set in its ``__init__``); the
:class:`~scalems_like.client.engine.Engine` adds the command API through which other threads reach it.

Flow control (:mod:`scalems_like.overlay.flow`): each agent announces its task window; a pilot's credit is that
window minus its tasks sent whose end is not yet journaled and acknowledged (the agent keeps those), and tasks go to
the pilot with the most credit while any has some. The others wait here (in ``pending``, and as NEW in the
journal) — canceled there, they never reach an agent. Without a journal, an end is acknowledged when it arrives.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from scalems_like import protocol
from scalems_like.adapters import BatchAdapter, JobEvent
from scalems_like.client.io_thread import IoThread
from scalems_like.client.pilot import Pilot
from scalems_like.client.pilot_lifecycle import PilotLifecycle, PilotRecord
from scalems_like.client.profiling import ProfileRecorder
from scalems_like.client.task import Task
from scalems_like.client.task_updates import TaskUpdates
from scalems_like.errors import ProtocolError, ProtocolVersionError
from scalems_like.network import message_socket, milliseconds
from scalems_like.protocol import curve
from scalems_like.protocol.curve import SessionKeys
from scalems_like.record import cancel_request
from scalems_like.record.journal import Journal
from scalems_like.resources import ResourceConfig
from scalems_like.states import PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.gateway_link import GatewayLink
    from scalems_like.staging.directives import Directive

log = logging.getLogger("scalems_like.client")

CHUNK = 2000
"""Tasks per SubmitTasks message."""
FEEDBACK_INTERVAL = 0.1
"""Seconds between reads of the bootstrap events of pilots that are starting."""


class EngineLoop(IoThread, TaskUpdates):
    """The engine's state, socket and loop (see the module)."""

    def __init__(self, uid: str) -> None:
        super().__init__(uid)
        self.uid = uid
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.tasks: dict[str, Task] = {}
        self.pilots: dict[str, Pilot] = {}
        """Every pilot of the session (those a restore found final too), in submission order."""
        self.records: dict[str, PilotRecord] = {}
        """The pilots this engine follows (or followed), by uid."""
        self.pilots_submitting = 0
        """Calls of ``submit_pilot`` under way (a wait for tasks counts on their pilot)."""
        self.pilot_numbers = itertools.count()
        self.resources: dict[str, ResourceConfig] = {}
        self.adapters: dict[str, BatchAdapter] = {}
        self.gateways: dict[str, GatewayLink] = {}
        self.gateway_lock = threading.Lock()
        """Held while a gateway is started: two pilots submitted at once on a remote resource share one."""
        self.remote_outputs: dict[str, tuple[GatewayLink, list[Directive], Path]] = {}
        """Tasks whose client:// outputs are fetched over ssh before their end is applied (task uid → the link,
        what to fetch, the client's directory)."""
        """Remote resources' gateways (by resource name): see :mod:`scalems_like.client.gateway_link`."""
        self.heartbeat_interval = 1.0
        self.keys: SessionKeys | None = None
        """CurveZMQ keys of the session (None: insecure, for debugging; see protocol/curve.py)."""
        self.pending: collections.deque[Task] = collections.deque()
        self.wire: dict[str, dict[str, Any]] = {}
        self.job_ends: list[tuple[PilotRecord, JobEvent]] = []
        """Batch jobs that ended, handled after the agents' messages that arrived before (see handle_job_ends)."""
        self.context: zmq.Context[zmq.Socket[bytes]] | None = None
        self.router: zmq.Socket[bytes] | None = None
        self.endpoints: dict[str, str] = {}
        self.last_heartbeat = 0.0
        self.callbacks: list[Callable[[], None]] = []
        self.client_root = Path.cwd()
        self.journal: Journal | None = None
        self.journal_batch: list[dict[str, Any]] = []
        self.profile = ProfileRecorder()
        self.hold_pending = False
        """True while a session is restored: pending tasks wait for the decision on a new pilot."""
        self.told_of_result_files = False
        """True once the session said that large return values stay in their task sandboxes (said once)."""
        self.drops = protocol.DropLog(log)
        self.authenticator: ThreadAuthenticator | None = None
        self.lifecycle = PilotLifecycle(self)
        """Pilot state changes; the engine hands it every pilot event (see its module)."""
        self.started_at = time.time()
        self.next_cancel_look = 0.0
        self.canceled_by: str | None = None
        """Set once ``scalems-like cancel`` asked this live client to cancel (see record/cancel_request.py)."""

    def start(self, keys: SessionKeys | None, journal: Journal | None) -> None:
        """Open the agents' socket (CurveZMQ with ``keys``; None: insecure) and start the I/O thread; state changes
        go to ``journal`` (None: the session keeps none)."""
        self.journal, self.keys = journal, keys
        if journal is not None:
            journal.on_commit = self.on_journal_commit
        self.context = zmq.Context()
        self.router = message_socket(self.context.socket(zmq.ROUTER))
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if keys is not None:
            curve.serve(self.router, keys.client_public, keys.client_secret)
            self.authenticator = curve.start_authenticator(self.context, {keys.agent_public}, f"session {self.uid}")
        self.start_thread(self.run)

    def stop(self) -> None:
        """Stop the I/O thread (what was posted before still runs) and close the socket."""
        if not self.stop_thread():
            return
        assert self.router is not None and self.context is not None
        self.router.close()
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        self.context.term()
        self.close_wake_fd()

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> None:
        assert self.router is not None
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake_fd, zmq.POLLIN)
        steps = (self.handle_commands, self.handle_agent_messages, self.handle_job_ends,
                 self.handle_bootstrap_feedback, self.handle_timers, self.handle_dispatch, self.handle_journal,
                 self.run_callbacks)
        while not self.stopping:
            events = dict(poller.poll(milliseconds(self.poll_timeout())))
            if self.wake_fd in events:
                self.woken()
            for step in steps:
                if step is self.handle_agent_messages and self.router not in events and not self.job_ends:
                    continue
                try:
                    step()
                except Exception:
                    log.exception("session %s: %s failed; the session goes on", self.uid, step.__name__)
        self.handle_commands()  # what was posted with the stop command still runs
        if self.job_ends:
            self.handle_agent_messages()
            self.handle_job_ends()
        self.handle_journal()

    def poll_timeout(self) -> float:
        starting = any(not r.pilot.state.is_final and r.pilot.state is not PilotState.ACTIVE
                       for r in self.records.values())
        due = self.last_heartbeat + self.heartbeat_interval - time.time()
        return max(0.0, min(due, FEEDBACK_INTERVAL if starting else self.heartbeat_interval))

    def handle_agent_messages(self) -> None:
        assert self.router is not None
        while True:
            try:
                identity, data = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue  # not a two-frame message
            record = self.records.get(identity.decode(errors="replace"))
            if record is None:
                log.warning("dropped a message from unknown peer %r", identity[:40])
                continue
            try:
                message = protocol.decode(data)
            except ProtocolVersionError as error:  # its agent runs another release: say so, do not wait
                if not record.pilot.state.is_final and not record.ending:
                    self.lifecycle.fail_pilot(record, f"its agent cannot talk to this client: {error}")
                continue
            except ProtocolError as error:
                self.drops.dropped(f"pilot {record.pilot.uid}", error)
                continue
            record.last_seen = time.time()
            self.handle_agent_message(record, message)

    def handle_agent_message(self, record: PilotRecord, message: Any) -> None:
        if isinstance(message, protocol.TaskUpdates):
            self.apply_updates(record, message.updates)
        elif isinstance(message, protocol.TaskWindow):
            record.window = message.size
        elif isinstance(message, protocol.Hello):
            self.lifecycle.on_hello(record, message)
        elif isinstance(message, protocol.AgentStopping):
            self.lifecycle.on_agent_stopping(record, message)
        elif isinstance(message, protocol.BootstrapEvents):
            self.lifecycle.on_bootstrap_events(record, message)
        elif isinstance(message, protocol.Heartbeat):
            self.profile.clock(record.pilot.uid, message.time)
        elif isinstance(message, protocol.AgentEvents):
            self.lifecycle.on_agent_events(record, message)
        elif isinstance(message, protocol.NodesReady):
            self.lifecycle.on_nodes_ready(record, message)

    def handle_job_ends(self) -> None:
        """Batch jobs that ended since the last pass; the socket was read just before (handle_agent_messages runs
        whenever one waits here), so an agent's last words (AgentStopping) are in before its job's end."""
        ends, self.job_ends = self.job_ends, []
        for record, event in ends:
            self.lifecycle.on_job_end(record, event)

    def handle_bootstrap_feedback(self) -> None:
        now = time.time()
        for record in self.records.values():
            starting = record.pilot.state in (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING)
            if starting and now >= record.next_feedback_read:
                record.next_feedback_read = now + FEEDBACK_INTERVAL
                self.lifecycle.read_feedback(record)

    def handle_timers(self) -> None:
        now = time.time()
        if now - self.last_heartbeat >= self.heartbeat_interval:
            self.last_heartbeat = now
            beat = protocol.encode(protocol.Heartbeat(now))
            for record in self.records.values():
                if record.pilot.state is PilotState.ACTIVE:
                    self.send(record, beat)
        for record in list(self.records.values()):
            if not record.ending:
                self.lifecycle.check_liveness(record, now)
        if now >= self.next_cancel_look and self.canceled_by is None:
            self.next_cancel_look = now + cancel_request.LOOK_INTERVAL
            request = cancel_request.read_request(self.uid, self.started_at)
            if request is not None:
                self.cancel_on_request(request.reason)

    def cancel_on_request(self, reason: str) -> None:
        """``scalems-like cancel`` asked: tasks waiting here end CANCELED, every live pilot is stopped and ends
        CANCELED with ``reason`` (its agent cancels its tasks)."""
        self.canceled_by = reason
        log.warning("session %s: %s: canceling its tasks and pilots", self.uid, reason)
        self.end_tasks([task.uid for task in self.pending], TaskState.CANCELED, reason)
        self.pending.clear()
        for record in self.records.values():
            if not record.pilot.state.is_final and not record.ending:
                self.lifecycle.stop_pilot(record, reason, cancel=True)

    def handle_dispatch(self) -> None:
        active = [r for r in self.records.values()
                  if r.pilot.state is PilotState.ACTIVE and not r.cancel_requested and not r.ending
                  and (r.greeted or not r.reattached)]  # a reattached agent must reconnect first
        if not self.pending or not active:
            return
        now = time.time()
        while self.pending:
            record = max(active, key=lambda r: r.credit)
            credit = record.credit
            if credit <= 0:
                return  # (a task's end, once journaled and acknowledged, returns its credit)
            batch: list[dict[str, Any]] = []
            tasks_directory = f"{record.pilot.sandbox}/tasks/"
            with self.lock:
                while self.pending and len(batch) < min(CHUNK, credit):
                    task = self.pending.popleft()
                    if not self.transition(task, TaskState.SUBMITTED, now, None, pilot=record.pilot.uid,
                                           sandbox=tasks_directory + task.uid):
                        continue  # canceled while waiting here
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

    def send(self, record: PilotRecord, data: bytes) -> None:
        assert self.router is not None
        try:
            self.router.send_multipart([record.pilot.uid.encode(), data])
        except zmq.ZMQError as error:  # the agent is not (or no longer) connected
            log.warning("could not send to pilot %s: %s", record.pilot.uid, error)
