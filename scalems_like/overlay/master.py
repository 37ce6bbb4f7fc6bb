"""The master: the agent's event loop between the client and the workers.

The master talks to one *node manager* per node (:mod:`scalems_like.overlay.node_manager`: it holds the node's one
connection, forks the node's workers and relays their messages), yet schedules, tracks and heals per worker: every
message for or from a worker travels through its node's manager (the routed frames of
:mod:`scalems_like.protocol.messages`).

One ``poll`` over the client socket, the managers' socket and the launcher processes, then a fixed list of steps::

    handle_client_messages   submit / cancel / shutdown / heartbeat from the client
    handle_manager_messages  node hellos, worker exits, the workers' task updates and give-backs, heartbeats
                             (see node_link.py)
    handle_worker_exits      a launcher process that ended: its nodes are lost (see worker_care.py)
    handle_schedule          give queued tasks to workers (see scheduler.py)
    handle_deadlines         pilot runtime end, client gone past its grace period (see client_link.py), silent workers,
                             nodes that never joined (see readiness.py)
    handle_heartbeats        tell the client and the workers we are alive
    handle_flush             send the batched task updates, agent events (for the profile) and how much of the
                             pilot serves (see readiness.py) to the client
    collections.handle       a full garbage collection, at most once a minute (see collection.py)

A worker that dies (its process ends, or it falls silent and its manager kills it) is replaced on its node by that
node's manager, at the master's word (:class:`~scalems_like.protocol.StartWorkers`); a node whose manager is lost
(its process ended, it fell silent, its connection went) is out of the schedule, its tasks charged;
:mod:`scalems_like.overlay.healing` decides which of its tasks pays for the death, and takes a node whose idle
workers keep dying out of the schedule (the pilot fails only when every node is out). Workers ended by the pilot's
own end (a stop, the job's SIGTERM) are neither replaced nor blamed.

A task update from a worker counts only if that worker is still known and the update is for the task's current
attempt: a worker declared lost (silent, unreachable, its process ended) may still talk, and is told to stop.

Flow control (:mod:`scalems_like.overlay.flow`): the master announces its task window to the client, which sends no
more unfinished tasks than that; a worker whose current task runs long gives back the tasks queued behind it, and
they run on other workers.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, cast

import zmq
from zmq.auth.thread import ThreadAuthenticator

from scalems_like import protocol
from scalems_like.agent.config import AgentConfig, node_heartbeat_interval
from scalems_like.agent.launch import Launched, WorkerLauncher
from scalems_like.agent.nodes import Node
from scalems_like.network import bind_and_advertise, message_socket, milliseconds
from scalems_like.overlay.client_link import ClientLink
from scalems_like.overlay.collection import FullCollections
from scalems_like.overlay.execution import ended_by_foreign_sigterm
from scalems_like.overlay.flow import StartRate, task_window
from scalems_like.overlay.healing import NodeHealth
from scalems_like.overlay.node_link import NodeLink
from scalems_like.overlay.readiness import Readiness
from scalems_like.overlay.scheduler import Scheduler
from scalems_like.overlay.worker_care import Stop, WorkerCare
from scalems_like.overlay.worker_processes import TERMINATION_PATIENCE, WorkerProcesses
from scalems_like.protocol import curve
from scalems_like.protocol.curve import AgentKeys
from scalems_like.protocol.feedback import parse_events
from scalems_like.protocol.tasks import TaskUpdate, task_update
from scalems_like.states import PilotState, TaskState

log = logging.getLogger("scalems_like.master")


_STATES: dict[object, TaskState] = {state.value: state for state in TaskState}


EVENTS_PER_MESSAGE = 4096
"""Agent events sent in one AgentEvents at most (more in one pass are sent as they come)."""


SHARED_STRINGS = ("kind", "executable", "stdout", "stderr")
"""Keys of a task whose values most tasks of a workflow share: the master keeps one copy of each value."""


NO_ARGUMENTS: tuple[str, ...] = ()
"""The ``arguments`` of every task that has none (the wire packs a tuple as the list a worker decodes)."""


def share_values(task: dict[str, Any]) -> None:
    """Make the values of :data:`SHARED_STRINGS` one object for every task that has the same, and empty
    ``arguments`` the one :data:`NO_ARGUMENTS` (each task decoded has its own copies: 283 of the 635 bytes of a plain
    ``/bin/true`` task, and the master holds a window of 540 672 tasks at 4 096 x 128 cores). The master never
    changes a task's values in place."""
    for key in SHARED_STRINGS:
        value = task.get(key)
        if value.__class__ is str:
            task[key] = sys.intern(value)
    if task.get("arguments") == []:
        task["arguments"] = NO_ARGUMENTS


def task_state(value: object) -> TaskState | None:
    """The state named in a task update, or None if it names none (a dict lookup: it runs twice per task)."""
    return _STATES.get(value) if isinstance(value, str) else None


def listen_backlog(nodes: int) -> int:
    """A listen backlog for ``nodes`` connections at once, within the kernel's ``net.core.somaxconn``."""
    try:
        limit = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        limit = 4096
    return max(100, min(nodes, limit))


def read_bootstrap_events(sandbox: Path) -> list[list[object]]:
    """The bootstrap's events, as lists for the wire."""
    try:
        return [list(event) for event in parse_events((sandbox / "bootstrap" / "events").read_text(errors="replace"))]
    except OSError:
        return []


class Master(NodeLink, WorkerCare, Readiness):
    def __init__(self, config: AgentConfig, nodes: list[Node], per_node: int, width: int, *, host: str,
                 context: zmq.Context[zmq.Socket[bytes]], link: ClientLink, workers: zmq.Socket[bytes],
                 keys: AgentKeys | None) -> None:
        """Hold what :meth:`open` made (the sockets, this host's name); does no I/O itself."""
        self.config = config
        self.nodes = nodes
        self.per_node = per_node
        self.width = width
        self.scheduler = Scheduler(width=width)
        for node in nodes:
            self.scheduler.add_node(node.name, node.cores, node.gpus, workers=per_node)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.outbox: list[TaskUpdate] = []
        self.events: list[list[Any]] = []
        """Agent events for the session's profile (AgentEvents), sent with the next flush."""
        self.recorded_depth = 0
        self.manager_seen: dict[str, float] = {}
        """Node managers that said hello and are not lost, with when they were last heard."""
        self.manager_node: dict[str, str] = {}
        """Every node manager that said hello: its node."""
        self.node_manager: dict[str, str] = {}
        """Each node's (live) manager."""
        self.spoken_to: set[str] = set()
        """Node managers sent something since the last heartbeat to them: none is due to them (at 4 096 nodes, most
        of them while tasks flow)."""
        self.replacements = 0
        self.last_silence_check = 0.0
        self.drained_at = time.time()
        """When the master last found the managers' socket empty: a manager is silent only if it sent nothing up
        to then (a long pass of the master's own leaves their heartbeats unread, and is not their silence)."""
        self.lost_workers: set[str] = set()
        self.started: set[str] = set()
        """Tasks whose current attempt a worker reported RUNNING."""
        self.held: dict[str, tuple[TaskUpdate, float]] = {}
        """Tasks whose process ended by SIGTERM, held (update, until when) in case the agent's own follows."""
        self.pids: dict[str, tuple[int, str | None]] = {}
        """Process id and host of running executable tasks (to kill them if their worker is lost)."""
        self.canceling: set[str] = set()
        """Tasks a worker was told to cancel (should it die first, they end CANCELED, not queued again)."""
        self.drops = protocol.DropLog(log)
        self.deadline = time.time() + config.runtime - min(30.0, 0.05 * config.runtime)
        self.last_heartbeat = 0.0
        self.node_beat = node_heartbeat_interval(config, len(nodes))
        """Seconds between two heartbeats to the node managers (longer than the client's above 1 024 nodes)."""
        self.last_node_heartbeat = 0.0
        self.stop_reason: Stop | None = None
        self.host = host
        self.task_root = str(Path(config.pilot_sandbox) / "tasks")
        self.context = context
        self.link = link
        self.workers = workers
        self.keys = keys
        self.authenticator: ThreadAuthenticator | None = None
        self.poller = zmq.Poller()
        self.processes = WorkerProcesses(self.poller)
        self.launcher: WorkerLauncher | None = None
        """Started the node managers (None: nobody replaces a lost worker)."""
        self.health = NodeHealth(config.worker_deaths_limit, config.worker_deaths_window)
        self.joined: set[str] = set()
        self.join_deadline: float | None = None
        self.node_launchers: dict[str, Launched] = {}
        self.collections = FullCollections()
        self.start_rate = StartRate(time.time())
        """Tasks its workers start per second (the task window follows it: flow.py)."""

    @classmethod
    def open(cls, config: AgentConfig, nodes: list[Node], per_node: int, width: int) -> Master:
        """A master with its ZeroMQ context, (not yet bound or connected) sockets and keys (read from the pilot
        sandbox unless the pilot is insecure)."""
        keys = None if config.insecure else AgentKeys.read(Path(config.pilot_sandbox))
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        return cls(config, nodes, per_node, width, host=socket.gethostname(), context=context,
                   link=ClientLink(config, keys), workers=message_socket(context.socket(zmq.ROUTER)), keys=keys)

    # -- set up --------------------------------------------------------------------------------------
    def bind_workers(self) -> str:
        """Bind the node managers' socket; returns the address they connect to. Its listen backlog holds every
        node's first connect (ZeroMQ's default of 100 makes the others retry after 1 s, then 3 s: 4 096 nodes
        joined in 33-59 s instead of 8)."""
        self.workers.setsockopt(zmq.LINGER, 0)
        self.workers.setsockopt(zmq.BACKLOG, listen_backlog(len(self.nodes)))
        self.workers.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self.keys is not None:  # node managers hold the agent's own key pair
            curve.serve(self.workers, self.keys.agent_public, self.keys.agent_secret)
            self.authenticator = curve.start_authenticator(self.context, {self.keys.agent_public},
                                                           f"agent {self.config.pilot_uid}")
        self.poller.register(self.workers, zmq.POLLIN)
        return bind_and_advertise(self.workers, self.config.agent_address)

    def connect_client(self) -> None:
        """Connect to the client (or to one that reattached while the agent started) and greet it."""
        nodes = [[node.name, node.cores, node.gpus] for node in self.nodes]
        self.link.announce_window(self.task_window())
        self.link.open(self.context, self.poller, [
            protocol.Hello(self.config.pilot_uid, self.host, os.getpid(), nodes, time.time()),
            protocol.BootstrapEvents(read_bootstrap_events(Path(self.config.pilot_sandbox))),
        ])
        self.report_all_readiness()

    def start_workers(self, launcher: WorkerLauncher) -> None:
        """Start the node managers with ``launcher`` and watch their processes."""
        self.launcher = launcher
        launched = launcher.start()
        self.processes.watch(launched)
        self.node_launchers.update((node, item) for item in launched for _uid, node in item.managers)
        self.join_deadline = time.time() + self.config.node_join_timeout

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> tuple[str, str]:
        """Serve until shutdown or runtime end; returns (final pilot state, reason)."""
        self.collections.start()
        try:
            return self.serve()
        finally:
            self.collections.stop()

    def serve(self) -> tuple[str, str]:
        while self.stop_reason is None:
            events = dict(self.poller.poll(milliseconds(self.poll_timeout())))
            if self.link.socket in events:
                self.handle_client_messages()
            if self.workers in events:
                self.handle_manager_messages()
            else:
                self.drained_at = time.time()
            self.handle_worker_exits(events)
            self.handle_schedule()
            self.handle_deadlines()
            self.handle_heartbeats()
            self.handle_flush()
            self.collections.handle()
        self.stop_everything()
        return self.stop_reason.pilot_state.value, self.stop_reason.reason

    def poll_timeout(self) -> float:
        now = time.time()
        held = min((until for _update, until in self.held.values()), default=self.deadline)
        wake = min(self.last_heartbeat + self.config.heartbeat_interval, self.deadline, held, self.link.next_check(now))
        return max(0.0, wake - now)

    def handle_client_messages(self) -> None:
        for message in self.link.receive():
            if isinstance(message, protocol.SubmitTasks):
                self.accept(self.link.new_tasks(message.tasks))
            elif isinstance(message, protocol.CancelTasks):
                self.cancel(message.uids)
            elif isinstance(message, protocol.Shutdown):
                self.stop_reason = Stop(PilotState.DONE, f"shut down by the client: {message.reason}",
                                        TaskState.CANCELED)

    def handle_task_updates(self, updates: list[TaskUpdate]) -> None:
        for update in updates:
            uid = update["uid"]  # (decode checked it: a task update always has its uid, state and time)
            task = self.tasks.get(uid)
            state = task_state(update.get("state"))
            if task is None or state is None or update.get("attempt", 0) != task["attempt"]:
                continue  # a task no longer here, or a late word about an earlier attempt
            if not state.is_final:
                if state is TaskState.RUNNING:
                    self.started.add(uid)  # (for the stop: an interrupted task ran, or was still queued)
                    self.start_rate.started += 1
                if "pid" in update:
                    self.pids[uid] = (update["pid"], update.get("host"))
                self.outbox.append(update)
                continue
            self.scheduler.finished(uid)
            if "started" in update:
                self.scheduler.observe_duration(update["time"] - update["started"])
            if state is TaskState.FAILED and ended_by_foreign_sigterm(update):  # (DONE: no call on the hot path)
                # a batch system that ends the job signals every process of it: the task's SIGTERM often comes
                # just before or after the agent's, whose reason (the pilot's end: interrupted) is the better one
                # (once the agent stops, a held task ends with the stop's reason: stop_everything)
                self.held[uid] = (update, time.time() + TERMINATION_PATIENCE)
                continue
            self.finish(task, update, state)

    def finish(self, task: dict[str, Any], update: TaskUpdate, state: TaskState) -> None:
        """A task's attempt ended: run it again if it failed with retries left, else report its end."""
        uid = task["uid"]
        if state is TaskState.FAILED and task["attempt"] < task.get("retries", 0) and self.stop_reason is None:
            self.retry(task, update.get("reason") or "it failed")
            return
        del self.tasks[uid]
        self.started.discard(uid)
        self.canceling.discard(uid)
        self.pids.pop(uid, None)
        self.outbox.append(update)

    def release_held(self, now: float) -> None:
        """Held SIGTERM endings (see handle_task_updates) whose patience ran out without the agent's own
        SIGTERM: the task alone was signaled, and that is its end."""
        for uid, (update, until) in list(self.held.items()):
            if now >= until:
                del self.held[uid]
                if uid in self.tasks:
                    self.finish(self.tasks[uid], update, TaskState.FAILED)

    def retry(self, task: dict[str, Any], reason: str) -> None:
        task["attempt"] += 1
        self.started.discard(task["uid"])
        self.pids.pop(task["uid"], None)
        self.outbox.append(self._update(task, TaskState.QUEUED, reason=(
            f"retry {task['attempt']} of {task.get('retries', 0)} after: {reason}")))
        self.scheduler.submit([task])

    def handle_schedule(self) -> None:
        assignments = self.scheduler.schedule()
        for task, reason in self.scheduler.take_rejected():  # workers were lost: it can never run here
            self.tasks.pop(task["uid"], None)
            self.outbox.append(self._update(task, TaskState.FAILED, reason=reason))
            self.record("scheduler", self.host, "reject", task["uid"], reason)
        depth = self.scheduler.depth
        if assignments and not self.recorded_depth * 0.5 < depth < self.recorded_depth * 2:  # a change by 2x
            self.recorded_depth = depth
            self.record("scheduler", self.host, "depth", "", str(depth))
        if assignments:
            self.send_tasks(assignments)

    def handle_deadlines(self) -> None:
        now = time.time()
        if self.held:
            self.release_held(now)
        if now >= self.deadline:
            self.stop_reason = Stop(PilotState.DONE, f"pilot runtime of {self.config.runtime:g} s ended")
        elif (reason := self.link.check(now, self.context, self.poller)) is not None:
            self.stop_reason = Stop(PilotState.FAILED, reason)
        self.check_node_joins(now)
        if now - self.last_silence_check >= self.config.heartbeat_interval:
            self.last_silence_check = now
            for manager, seen in list(self.manager_seen.items()):
                if self.drained_at - seen > self.config.heartbeat_timeout:
                    self.manager_lost(manager, f"its node manager {manager} fell silent for {now - seen:.0f} s")

    def handle_heartbeats(self) -> None:
        now = time.time()
        if now - self.last_heartbeat < self.config.heartbeat_interval:
            return
        self.last_heartbeat = now
        self.link.heartbeat(now)
        self.start_rate.measure(now)  # (once a second: the task window follows it)
        if now - self.last_node_heartbeat < self.node_beat:
            return
        self.last_node_heartbeat = now
        beat = [b"", protocol.encode(protocol.Heartbeat(now))]  # (encoded once for all: 1 024 managers a second)
        spoken = self.spoken_to
        for manager in list(self.manager_seen):
            if manager not in spoken:  # (what it was sent since the last beat says the master is alive)
                self.send_frames(manager, beat)
        self.spoken_to = set()

    def handle_flush(self) -> None:
        self.handle_readiness()
        self.link.announce_window(self.task_window())  # (sent only when it changed enough)
        if self.outbox:
            self.link.send_updates(self.outbox)
            self.outbox = []
        if self.events:
            self.link.send_events(self.events)
            self.events = []

    def record(self, component: str, where: str, event: str, uid: str, detail: str = "") -> None:
        """Note an agent event for the session's profile (buffered: sent by the next flush, or once
        :data:`EVENTS_PER_MESSAGE` gathered: 4 096 nodes joining in one pass are 524 288 worker starts)."""
        self.events.append([time.time(), component, where, event, uid, detail])
        if len(self.events) >= EVENTS_PER_MESSAGE and self.link.socket is not None:
            self.link.send_events(self.events)
            self.events = []

    def request_stop(self, state: str, reason: str, tasks_end: TaskState = TaskState.FAILED) -> None:
        """Ask the loop to end (from a signal handler, say): the pilot ends ``state``, its tasks ``tasks_end``."""
        if self.stop_reason is None:
            self.stop_reason = Stop(PilotState(state), reason, tasks_end)

    # -- actions -------------------------------------------------------------------------------------
    def accept(self, tasks: list[dict[str, Any]]) -> None:
        accepted = []
        for task in tasks:
            share_values(task)
            task.setdefault("attempt", 0)  # a resumed task goes on counting its attempts
            if task["kind"] == "function" and self.config.results_in_sandbox_above is not None:
                task["results_in_sandbox_above"] = self.config.results_in_sandbox_above
            reason = self.scheduler.unsatisfiable_reason(task)
            if reason is not None:
                self.outbox.append(self._update(task, TaskState.FAILED, reason=reason))
                continue
            self.tasks[task["uid"]] = task
            accepted.append(task)
            self.outbox.append(self._update(task, TaskState.QUEUED))
        self.scheduler.submit(accepted)

    def take_back(self, worker: str, uids: list[str]) -> None:
        """``worker`` gave back tasks queued behind its current task, which runs long: they go to the head of the
        queue (for the other workers), or end CANCELED if the client was canceling them."""
        taken = self.scheduler.give_back(worker, uids)
        for uid in [uid for uid in taken if uid in self.canceling]:
            self.cancel_pending(uid, "canceled before it started")
        self.scheduler.requeue([self.tasks[uid] for uid in taken if uid in self.tasks])
        if taken:
            self.record("scheduler", self.scheduler.workers[worker].node, "give_back", worker,
                        f"{len(taken)} task(s) queued behind a long task")

    def task_window(self) -> int:
        """How many unfinished tasks this agent takes from its client now (see flow.py)."""
        return task_window(self.scheduler.capacity, self.scheduler.mean_duration, self.start_rate.rate)

    def cancel(self, uids: list[str]) -> None:
        by_worker: dict[str, list[str]] = {}
        for uid in uids:
            where = self.scheduler.cancel(uid)
            if where == "pending":
                self.cancel_pending(uid, "canceled before it started")
            elif where is not None:
                by_worker.setdefault(where, []).append(uid)
        for worker, worker_uids in by_worker.items():
            self.canceling.update(worker_uids)
            if not self.send_worker(worker, protocol.CancelTasks(worker_uids)):
                for uid in worker_uids:  # the worker was lost and the task perhaps queued for a retry
                    if self.scheduler.cancel(uid) == "pending":
                        self.cancel_pending(uid, "canceled before a retry started (its worker was lost)")

    def cancel_pending(self, uid: str, reason: str) -> None:
        task = self.tasks.pop(uid)
        self.canceling.discard(uid)
        self.outbox.append(self._update(task, TaskState.CANCELED, reason=reason))

    def stop_everything(self) -> None:
        """Stop queued and running tasks, stop the workers, report, and close the sockets.

        The stopped tasks end in the state the stop's cause says (:attr:`Stop.tasks_end`). Those that end FAILED
        (runtime end, a failure, the client gone) are marked ``interrupted`` — ``"queued"`` or ``"running"`` — so
        that a resumed session knows they can run again on another pilot; so are tasks that ended by a SIGTERM
        of their own just before or during the stop (:attr:`held`: the job's end reached them first).
        """
        assert self.stop_reason is not None
        reason, end = self.stop_reason.reason, self.stop_reason.tasks_end
        def ending(ran: bool) -> dict[str, str]:
            fields = {"reason": f"{reason} while the task ran" if ran else f"{reason} before the task started"}
            if end is not TaskState.CANCELED:
                fields["interrupted"] = "running" if ran else "queued"
            return fields

        for task in self.scheduler.drain_pending():
            self.tasks.pop(task["uid"], None)
            self.outbox.append(self._update(task, end, **ending(False)))
        for worker, state in list(self.scheduler.workers.items()):
            self.record("worker", state.node, "stop", worker, reason)
        for manager in list(self.manager_seen):  # each tells its workers, which report what they stopped
            self.send_manager(manager, protocol.Shutdown(reason))
        self.collect_last_updates()
        for update in self.outbox:  # the workers report what they stopped as CANCELED; say why
            if update["state"] == TaskState.CANCELED and update.get("worker"):
                cast(dict[str, Any], update).update(state=end.value, **ending("started" in update))
        for task in self.tasks.values():
            self.outbox.append(self._update(task, end, **ending(task["uid"] in self.started)))
        self.tasks.clear()
        self.handle_flush()
        self.link.send(protocol.AgentStopping(self.stop_reason.pilot_state.value, reason))
        self.processes.terminate()
        self.close()

    def close(self) -> None:
        """Close the link (its socket lingers to deliver the last reports; writes ``agent.stopped``), the
        worker socket and the context."""
        stop = self.stop_reason or Stop(PilotState.FAILED, "the agent closed before its loop ran")
        self.link.close(stop.pilot_state.value, stop.reason)
        self.workers.close(linger=0)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()

    def collect_last_updates(self, patience: float = 5.0) -> None:
        """Give the workers ``patience`` seconds to report the tasks they were running (not when every node
        manager has already ended: a SIGTERM to the whole job reaches them too, and nobody is left to report)."""
        end = time.time() + patience
        while len(self.tasks) > len(self.held) and time.time() < end and self.scheduler.workers \
                and self.processes.alive():
            if self.workers.poll(milliseconds(min(0.25, max(0.0, end - time.time())))):
                self.handle_manager_messages()

    # -- helpers -------------------------------------------------------------------------------------
    def _update(self, task: dict[str, Any], state: TaskState, **fields: Any) -> TaskUpdate:
        return task_update(task["uid"], state, time.time(), self.host, attempt=task.get("attempt", 0), **fields)
