"""The master's side of its node managers: a part of the master (its steps run in the master's loop, on its state).

Every message between the master and a node manager travels in routed frames (see
:mod:`scalems_like.protocol.messages`): ``[manager, worker, message, worker, message, ...]`` on the master's ROUTER,
the worker's uid empty for the manager itself. A manager's own messages are its hello (with the workers it forked
that are ready), the workers that ended, its heartbeats (not decoded: their arrival is all they say); its workers'
are task updates and give-backs. The master sends a worker's messages through that worker's manager, and the new
tasks of a pass for all the workers of a node in one :class:`~scalems_like.protocol.NodeTasks`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import zmq

from scalems_like import protocol
from scalems_like.agent.nodes import Node
from scalems_like.errors import ProtocolError
from scalems_like.overlay.healing import NodeHealth, death_reason
from scalems_like.overlay.scheduler import Scheduler
from scalems_like.protocol.tasks import TaskUpdate

if TYPE_CHECKING:
    from scalems_like.overlay.worker_care import Stop

log = logging.getLogger("scalems_like.master")

HEARTBEAT_SIZE = len(protocol.encode(protocol.Heartbeat(0.0))) + 1
"""A manager's heartbeat is ``[version, "heartbeat", time]``: shorter than this, "heartbeat" at bytes 3 to 11."""


class NodeLink:
    """The master's steps and actions for its node managers (a part of the master: the attributes below are its)."""

    nodes: list[Node]
    scheduler: Scheduler
    health: NodeHealth
    workers: zmq.Socket[bytes]
    drops: protocol.DropLog
    lost_workers: set[str]
    joined: set[str]
    manager_seen: dict[str, float]
    manager_node: dict[str, str]
    node_manager: dict[str, str]
    spoken_to: set[str]
    drained_at: float
    task_root: str
    """The directory of the task sandboxes (a node manager sets each task's)."""
    stop_reason: Stop | None

    if TYPE_CHECKING:  # the master's own (or WorkerCare's)
        def record(self, component: str, where: str, event: str, uid: str, detail: str = "") -> None: ...
        def refuse(self, worker: str, node: str, manager: str | None = None) -> None: ...
        def worker_died(self, worker: str, node: str, why: str, *, ended: bool, launched: Any = None) -> None: ...
        def manager_lost(self, manager: str, why: str, launched: Any = None) -> None: ...
        def handle_task_updates(self, updates: list[TaskUpdate]) -> None: ...
        def take_back(self, worker: str, uids: list[str]) -> None: ...

    def handle_manager_messages(self) -> None:
        while True:
            try:
                manager_frame, *frames = self.workers.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                self.drained_at = time.time()
                return
            manager = manager_frame.decode()
            if manager in self.manager_seen:
                self.manager_seen[manager] = time.time()
            for worker, data in zip(frames[0::2], frames[1::2], strict=False):
                if worker:
                    self.handle_worker_message(manager, worker.decode(), data)
                else:
                    self.handle_manager_message(manager, data)

    def handle_manager_message(self, manager: str, data: bytes) -> None:
        """A node manager's own message: its hello (and its workers'), workers that ended, a heartbeat."""
        if len(data) < HEARTBEAT_SIZE and data[3:12] == b"heartbeat" and manager in self.manager_seen:
            return  # (its arrival is all a heartbeat says: at 4 096 nodes, most of what the master reads)
        try:
            message = protocol.decode(data)
        except ProtocolError as error:
            self.drops.dropped(f"node manager {manager}", error)
            return
        if isinstance(message, protocol.NodeHello):
            self.node_said_hello(manager, message)
        elif manager not in self.manager_seen:
            if manager not in self.manager_node and not isinstance(message, protocol.Heartbeat):
                log.error("dropped a %s from node manager %s, which never said hello", message.tag, manager)
        elif isinstance(message, protocol.WorkersExited):
            for worker, code, why in message.workers:
                self.worker_exited(manager, worker, code, why)
        elif isinstance(message, protocol.TaskUpdates):
            self.handle_task_updates(message.updates)

    def node_said_hello(self, manager: str, message: protocol.NodeHello) -> None:
        """A node manager introduced itself and the workers it forked that are ready."""
        node = message.node if message.node in self.scheduler.nodes else self.nodes[0].name
        if manager not in self.manager_node:
            log.info("node manager %s (pid %d, host %s) serves node %s", manager, message.pid, message.host, node)
            self.manager_node[manager] = node
            self.manager_seen[manager] = time.time()
            self.node_manager[node] = manager
            self.record("node", node, "join", manager, f"pid {message.pid} on {message.host}")
        elif manager not in self.manager_seen:  # lost, and speaking again
            self.send_manager(manager, protocol.Shutdown(f"node manager {manager} was declared lost"))
            return
        for worker, pid in message.workers:
            if worker in self.lost_workers:  # a worker declared lost says it is ready again: not taken back
                self.send_worker(worker, protocol.Shutdown(f"worker {worker} was declared lost"), manager)
                continue
            if self.health.is_out(node):
                self.refuse(worker, node, manager)
                continue
            self.scheduler.add_worker(worker, node, manager)
            self.joined.add(node)
            self.record("worker", node, "start", worker, f"pid {pid}")

    def worker_exited(self, manager: str, worker: str, code: int, why: str) -> None:
        """Node manager ``manager`` saw one of its workers end (``why``: it killed it, else empty)."""
        if worker in self.lost_workers or self.stop_reason is not None:  # told to stop (lost, refused, the pilot ends)
            return
        node = self.manager_node.get(manager, self.nodes[0].name)
        reason = f"{why}; {death_reason(code)}" if why else death_reason(code)
        log.error("worker %s on node %s %s", worker, node, reason)
        self.worker_died(worker, node, reason, ended=True)

    def handle_worker_message(self, manager: str, worker: str, data: bytes) -> None:
        """A worker's message, relayed by its node manager."""
        if worker in self.lost_workers or worker not in self.scheduler.workers:
            if worker not in self.lost_workers:
                log.error("dropped a message from worker %s, which never said hello", worker)
                return
            log.warning("worker %s, declared lost, spoke again: told to stop, its message dropped", worker)
            self.send_worker(worker, protocol.Shutdown(f"worker {worker} was declared lost"), manager)
            return
        try:
            message = protocol.decode(data)
        except ProtocolError as error:
            self.drops.dropped(f"worker {worker}", error)
            return
        if isinstance(message, protocol.TaskUpdates):
            self.handle_task_updates(message.updates)
        elif isinstance(message, protocol.GiveBack):
            self.take_back(worker, message.uids)

    def send_worker(self, worker: str, message: protocol.Message, manager: str | None = None) -> bool:
        """Send to one worker through its node manager; returns False if that manager is gone."""
        if manager is None:
            slots = self.scheduler.workers.get(worker)
            if slots is None or not slots.manager:
                return False
            manager = slots.manager
        return self.send_manager(manager, message, worker)

    def send_manager(self, manager: str, message: protocol.Message, worker: str = "") -> bool:
        """Send to a node manager (for ``worker``, or for itself); a manager whose connection is gone
        (EHOSTUNREACH) is lost with its node: returns False."""
        return self.send_frames(manager, [worker.encode(), protocol.encode(message)])

    def send_tasks(self, assignments: dict[str, list[dict[str, Any]]]) -> None:
        """Give each worker its tasks: one :class:`~scalems_like.protocol.NodeTasks` per node manager, encoded once
        (at 4 096 nodes of 128 workers a pass gives most workers one task each: one message per worker cost the
        master more than the tasks)."""
        by_manager: dict[str, list[list[Any]]] = {}
        workers = self.scheduler.workers
        for worker, tasks in assignments.items():
            by_manager.setdefault(workers[worker].manager, []).append([worker, tasks])
        for manager, node_assignments in by_manager.items():
            self.send_manager(manager, protocol.NodeTasks(self.task_root, node_assignments))

    def send_frames(self, manager: str, frames: list[bytes]) -> bool:
        """Send routed ``[worker, message, ...]`` frames to a node manager; returns False (its node lost) if its
        connection is gone."""
        self.spoken_to.add(manager)
        try:
            self.workers.send_multipart([manager.encode(), *frames])
        except zmq.ZMQError as error:
            if error.errno != zmq.EHOSTUNREACH:
                raise
            if manager in self.manager_seen:
                self.manager_lost(manager, f"the connection of its node manager {manager} is gone (unreachable)")
            return False
        return True
