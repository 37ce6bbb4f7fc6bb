"""Emulated node managers for benchmarks/scale.py: many per process, each one DEALER speaking the real protocol.

    python benchmarks/scale_managers.py ADDRESS PILOT_SANDBOX FIRST COUNT CORES [--duration SECONDS] [--seed N]

Nodes ``node{FIRST:05d}`` to ``node{FIRST+COUNT-1:05d}``, each a node manager with ``CORES`` workers, connect to
the master at ``ADDRESS`` with CurveZMQ (the agent's keys in ``PILOT_SANDBOX/keys``), say NodeHello and serve in
one poll loop, heartbeating the master as a real node manager does (every heartbeat interval the agent gives its
managers, ``node_heartbeat_interval`` of ``PILOT_SANDBOX/agent.json``, in which it sent nothing else). The tasks of
a NodeTasks (one per node and pass of the master) are, per worker, RUNNING then DONE at once (or after a duration
drawn from an exponential distribution of mean ``--duration``, one task at a time per worker); updates are merged
per manager and loop pass (frame ``b""``, each update naming its worker). No process is forked, no task runs: what
is measured is the master.
"""

from __future__ import annotations

import argparse
import collections
import heapq
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from scalems_like import protocol
from scalems_like.agent.config import AgentConfig, node_heartbeat_interval
from scalems_like.agent.limits import SPARE_FILES, raise_open_files_limit
from scalems_like.network import message_socket
from scalems_like.protocol import curve
from scalems_like.protocol.curve import AgentKeys

MANAGER = b""
"""The worker frame of a message for or from the node manager itself."""


def node_name(index: int) -> str:
    return f"node{index:05d}"


def manager_uid(index: int) -> str:
    """A node manager's uid as the agent names them (``PILOT.worker.RANK``)."""
    return f"pilot.0000.worker.{index:04d}"


class Manager:
    """One emulated node manager: its socket, its workers' queues, the updates of this loop pass."""

    __slots__ = ("busy", "node", "outbox", "queues", "socket", "spoke", "stopped")

    def __init__(self, node: str, uid: str, sock: zmq.Socket[bytes], cores: int) -> None:
        self.node = node
        self.socket = sock
        self.queues: dict[str, collections.deque[dict[str, Any]]] = {
            f"{uid}.w{index:04d}": collections.deque() for index in range(cores)}
        """Each worker's tasks, named as a node manager names its workers (``MANAGER.wINDEX``)."""
        self.busy: set[str] = set()
        """Workers running a task of a drawn duration."""
        self.outbox: list[dict[str, Any]] = []
        self.stopped = False
        self.spoke = False
        """It sent updates since its last heartbeat (as the real one, it then sends none)."""

    def update(self, task: dict[str, Any], worker: str, state: str, **fields: Any) -> None:
        self.outbox.append({"uid": task["uid"], "state": state, "time": time.time(), "host": self.node,
                            "worker": worker, "attempt": task.get("attempt", 0), **fields})


class Emulation:
    def __init__(self, address: str, keys: AgentKeys, first: int, count: int, cores: int, duration: float,
                 seed: int, heartbeat_interval: float) -> None:
        self.address = address
        self.heartbeat_interval = heartbeat_interval
        self.keys = keys
        self.indices = range(first, first + count)
        self.cores = cores
        self.duration = duration
        self.random = random.Random(seed)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.poller = zmq.Poller()
        self.managers: dict[zmq.Socket[bytes], Manager] = {}
        self.timers: list[tuple[float, int, str, str]] = []
        """(due, order, node, worker) of the tasks of a drawn duration running now."""
        self.by_node: dict[str, Manager] = {}
        self.order = 0
        self.serving = 0
        """Managers not told to shut down."""
        self.last_beat = 0.0

    def connect(self) -> None:
        self.context.set(zmq.MAX_SOCKETS, len(self.indices) + 64)
        for index in self.indices:
            node, uid = node_name(index), manager_uid(index)
            sock = message_socket(self.context.socket(zmq.DEALER))
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt_string(zmq.IDENTITY, uid)
            curve.connect_as(sock, self.keys.agent_public, self.keys.agent_public, self.keys.agent_secret)
            sock.connect(self.address)
            manager = self.managers[sock] = self.by_node[node] = Manager(node, uid, sock, self.cores)
            self.serving += 1
            self.poller.register(sock, zmq.POLLIN)
            workers = [[uid, os.getpid()] for uid in manager.queues]
            hello = protocol.NodeHello(node, socket.gethostname(), os.getpid(), workers)
            sock.send_multipart([MANAGER, protocol.encode(hello)])

    def run(self) -> None:
        while self.serving:
            wake = min(self.timers[0][0], self.last_beat + self.heartbeat_interval) if self.timers else \
                self.last_beat + self.heartbeat_interval
            for sock, _event in self.poller.poll(int(max(0.0, wake - time.time()) * 1000)):
                self.handle_messages(self.managers[sock])  # type: ignore[index]
                self.handle_heartbeats()  # (on time however long this pass: each real manager has its node's CPUs)
            self.handle_timers()
            self.handle_heartbeats()
            self.handle_flush()
        self.context.destroy(linger=0)

    def handle_messages(self, manager: Manager) -> None:
        while True:
            try:
                frames = manager.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            for worker_frame, data in zip(frames[::2], frames[1::2], strict=True):
                message = protocol.decode(data)
                if worker_frame == MANAGER:
                    self.handle_manager_message(manager, message)
                else:
                    self.handle_worker_message(manager, worker_frame.decode(), message)

    def handle_manager_message(self, manager: Manager, message: protocol.Message) -> None:
        if isinstance(message, protocol.Shutdown):
            manager.stopped = True
            self.serving -= 1
            self.poller.unregister(manager.socket)
        elif isinstance(message, protocol.NodeTasks):
            for worker, tasks in message.assignments:
                if worker in manager.queues:
                    manager.queues[worker].extend(tasks)
                    self.start_next(manager, worker)
        elif isinstance(message, protocol.StartWorkers):
            for uid in message.uids:
                manager.queues[uid] = collections.deque()
            hello = protocol.NodeHello(manager.node, socket.gethostname(), os.getpid(),
                                       [[uid, os.getpid()] for uid in message.uids])
            manager.socket.send_multipart([MANAGER, protocol.encode(hello)])

    def handle_worker_message(self, manager: Manager, worker: str, message: protocol.Message) -> None:
        queue = manager.queues.get(worker)
        if queue is None:
            return
        if isinstance(message, protocol.CancelTasks):
            for task in [task for task in queue if task["uid"] in message.uids]:
                queue.remove(task)
                manager.update(task, worker, "CANCELED", reason="canceled before it started")

    def start_next(self, manager: Manager, worker: str) -> None:
        """Run what waits at ``worker``: at once, or its next task for a drawn duration."""
        queue = manager.queues[worker]
        while queue and worker not in manager.busy:
            task = queue[0]
            started = time.time()
            manager.update(task, worker, "RUNNING")
            if self.duration <= 0:
                queue.popleft()
                manager.update(task, worker, "DONE", exit_code=0, started=started)
                continue
            manager.busy.add(worker)
            self.order += 1
            heapq.heappush(self.timers, (started + self.random.expovariate(1 / self.duration), self.order,
                                         manager.node, worker))

    def handle_timers(self) -> None:
        now = time.time()
        while self.timers and self.timers[0][0] <= now:
            _due, _order, node, worker = heapq.heappop(self.timers)
            manager = self.by_node[node]
            manager.busy.discard(worker)
            queue = manager.queues[worker]
            if queue:
                task = queue.popleft()
                manager.update(task, worker, "DONE", exit_code=0, started=now)
            self.start_next(manager, worker)

    def handle_heartbeats(self) -> None:
        """Every node manager heartbeats the master for its node, as the real one does: every heartbeat interval,
        unless it sent something else since the last."""
        now = time.time()
        if now - self.last_beat < self.heartbeat_interval:
            return
        self.last_beat = now
        beat = protocol.encode(protocol.Heartbeat(now))
        for manager in self.managers.values():
            if not manager.stopped and not manager.spoke:
                manager.socket.send_multipart([MANAGER, beat])
            manager.spoke = False

    def handle_flush(self) -> None:
        for manager in self.managers.values():
            if manager.outbox and not manager.stopped:
                manager.socket.send_multipart([MANAGER, protocol.encode(protocol.TaskUpdates(manager.outbox))])
                manager.outbox = []
                manager.spoke = True


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("address")
    options.add_argument("sandbox")
    options.add_argument("first", type=int)
    options.add_argument("count", type=int)
    options.add_argument("cores", type=int)
    options.add_argument("--duration", type=float, default=0.0)
    options.add_argument("--seed", type=int, default=18)
    arguments = options.parse_args()
    warning = raise_open_files_limit(2 * arguments.count + SPARE_FILES)
    if warning:
        print(f"emulated node managers: {warning}", file=sys.stderr)
    keys = AgentKeys.read(Path(arguments.sandbox))
    config = AgentConfig.read(Path(arguments.sandbox))
    emulation = Emulation(arguments.address, keys, arguments.first, arguments.count, arguments.cores,
                          arguments.duration, arguments.seed + arguments.first,
                          node_heartbeat_interval(config, config.nodes))
    emulation.connect()
    emulation.run()


if __name__ == "__main__":
    main()
