"""The session's I/O thread: owns the ZeroMQ socket to the agents and applies every state change.

User threads never touch the socket; they ``post`` callables that run on this thread. The loop is one
``poll`` (agents' socket and a wake-up eventfd), then a fixed list of steps::

    handle_commands           run what user threads and psij's callbacks posted
    handle_agent_messages     hellos, task updates, nodes ready, heartbeats, stopping notices
    handle_bootstrap_feedback new bootstrap events of pilots not yet ACTIVE
    handle_timers             heartbeats to agents, silent agents, agents that never connect
    handle_dispatch           send tasks waiting on the client to ACTIVE pilots, as far as their credit goes
    handle_journal            queue this pass's state changes and profile rows for the session's journal (one batch)

A step that raises is logged and the loop goes on. Work that may block (canceling a batch job, a pilot's
output staging) runs on a small thread pool and posts its outcome back to this thread. What pilot events mean
for a pilot's state is :mod:`scalems_like.client.pilot_lifecycle`'s part; the engine hands them to it.

Flow control (:mod:`scalems_like.overlay.flow`): each agent announces its task window; a pilot's credit is that
window minus its tasks sent whose end is not yet journaled and acknowledged (the agent keeps those), and tasks go to
the pilot with the most credit while any has some. The others wait here (in ``pending``, and as NEW in the
journal) — canceled there, they never reach an agent. Without a journal, an end is acknowledged when it arrives.
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

import zmq
from zmq.auth.thread import ThreadAuthenticator

from scalems_like import protocol
from scalems_like.client.journal import Journal
from scalems_like.client.pilot_lifecycle import PilotLifecycle, PilotRecord
from scalems_like.client.profiling import ProfileRecorder
from scalems_like.client.task import Task, result_file_notice
from scalems_like.errors import ProtocolError, ProtocolVersionError, ScalemsError
from scalems_like.network import bind_and_advertise, message_socket
from scalems_like.protocol import curve
from scalems_like.states import PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.client")

_FINAL = {state.value for state in TaskState if state.is_final}
CHUNK = 2000
"""Tasks per SubmitTasks message."""
FEEDBACK_INTERVAL = 0.1
"""Seconds between reads of the bootstrap events of pilots that are starting."""


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
        self.told_of_result_files = False
        """True once the session said that large return values stay in their task sandboxes (said once)."""
        self.drops = protocol.DropLog(log)
        self.authenticator: ThreadAuthenticator | None = None
        self.lifecycle = PilotLifecycle(self)
        """Pilot state changes; the engine hands it every pilot event (see its module)."""

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
                    self.lifecycle.fail_pilot(record, f"its agent cannot talk to this client: {error}")
                continue
            except ProtocolError as error:
                self.drops.dropped(f"pilot {record.pilot.uid}", error)
                continue
            record.last_seen = time.time()
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

    def handle_bootstrap_feedback(self) -> None:
        now = time.time()
        for record in self.pilots.values():
            starting = record.pilot.state in (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING)
            if starting and now >= record.next_feedback_read:
                record.next_feedback_read = now + FEEDBACK_INTERVAL
                self.lifecycle.read_feedback(record)

    def handle_timers(self) -> None:
        now = time.time()
        if now - self.last_heartbeat >= self.session._heartbeat_interval:
            self.last_heartbeat = now
            beat = protocol.encode(protocol.Heartbeat(now))
            for record in self.pilots.values():
                if record.pilot.state is PilotState.ACTIVE:
                    self.send(record, beat)
        for record in list(self.pilots.values()):
            if not record.ending:
                self.lifecycle.check_liveness(record, now)

    def handle_dispatch(self) -> None:
        active = [r for r in self.pilots.values()
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
            batch = []
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

    def on_journal_commit(self, updates: list[dict[str, Any]]) -> None:
        """(Journal thread) final results are durable: their tasks compact, their agents may forget them."""
        ends = [update for update in updates if update["state"] in _FINAL]
        if ends:
            self.post(lambda: self.journaled(ends))

    def journaled(self, ends: list[dict[str, Any]]) -> None:
        """(I/O thread) tasks whose final update is committed keep only what is cheap (the rest is read back from
        the journal: see ``Task._compact``); agents forget the tasks they ended."""
        assert self.journal is not None
        tasks, reader = self.session._tasks, self.journal.reader
        for update in ends:
            task = tasks.get(update["uid"])
            if task is not None:
                task._compact_if_ended_by(update, reader)
        uids = [update["uid"] for update in ends if update.get("host") != "client"]
        if uids:
            self.acknowledge(uids)

    def acknowledge(self, uids: list[str]) -> None:
        by_pilot: dict[str, list[str]] = {}
        tasks = self.session._tasks
        for uid in uids:
            task = tasks.get(uid)
            if task is not None and task.pilot is not None:
                by_pilot.setdefault(task.pilot, []).append(uid)
        for pilot_uid, pilot_uids in by_pilot.items():
            record = self.pilots.get(pilot_uid)
            if record is None:
                continue
            record.unacknowledged.difference_update(pilot_uids)
            if record.pilot.state is PilotState.ACTIVE:
                self.send(record, protocol.encode(protocol.Acknowledge(pilot_uids)))

    # -- applying what happened ----------------------------------------------------------------------
    def apply_updates(self, record: PilotRecord, updates: list[dict[str, Any]]) -> None:
        tasks = self.session._tasks
        ended = []
        with self.lock:
            for update in updates:
                task = tasks.get(update.get("uid")) if isinstance(update, dict) else None
                if task is None:
                    continue
                state = self.apply(task, update)  # (None: stale, or delivered again after a reattach)
                if state is not None and state.is_final:
                    record.outstanding.discard(task.uid)
                    record.unacknowledged.add(task.uid)
                    ended.append(task.uid)
                    if "return_value_file" in update and not self.told_of_result_files:
                        self.told_of_result_files = True  # said once a session: not a line per task
                        log.warning("%s", result_file_notice(task))
            self.changed.notify_all()
        if self.journal is None and ended:  # (no journal to wait for: the agent may forget them now)
            self.acknowledge(ended)

    def fail_pending_without_pilots(self, why: str) -> None:
        """Tasks waiting on the client fail when no pilot that could run them is left."""
        if not self.pending or not self.session._pilots or self.hold_pending:
            return  # (no pilot yet: tasks wait for the first one)
        if any(not r.pilot.state.is_final and not r.ending for r in self.pilots.values()):
            return
        uids = [task.uid for task in self.pending]
        self.pending.clear()
        self.end_tasks(uids, TaskState.FAILED, f"no live pilot to run it: {why}")

    def end_tasks(self, uids: list[str], state: TaskState, reason: str) -> None:
        now = time.time()
        tasks = self.session._tasks
        with self.lock:
            for uid in uids:
                if self.transition(tasks[uid], state, now, reason):
                    self.wire.pop(uid, None)
            self.changed.notify_all()

    def interrupt_tasks(self, uids: list[str], reason: str) -> None:
        """Tasks whose pilot ended under them: FAILED, marked so that ``Session.resume`` can run them again."""
        now = time.time()
        with self.lock:
            for uid in uids:
                task = self.session._tasks[uid]
                interrupted = "running" if task.state is TaskState.RUNNING else "queued"
                self.transition(task, TaskState.FAILED, now, reason, interrupted=interrupted)
            self.changed.notify_all()

    def transition(self, task: Task, state: TaskState, when: float, reason: str | None = None,
                   **fields: Any) -> bool:
        """A state change decided on the client (not reported by an agent), with ``fields`` of the update
        (``pilot``, ``sandbox``, ``interrupted``); False if not allowed."""
        update = {"uid": task.uid, "state": state.value, "time": when, "host": "client", **fields}
        if reason is not None:
            update["reason"] = reason
        return self.apply(task, update) is not None

    def apply(self, task: Task, update: dict[str, Any]) -> TaskState | None:
        """Apply one update, from an agent or decided here, as a journal replay applies it (``Task._apply``);
        journal it and queue the task's callbacks. Returns the new state, or None if the update was stale."""
        state = task._apply(update)
        if state is not None:
            self.journal_batch.append(update)
            self.queue_callbacks(task, state)
        return state

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
