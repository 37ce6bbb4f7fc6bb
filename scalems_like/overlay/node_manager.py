"""A node manager: the one process per node between the master and the node's workers.

Started by the agent's launch method, one per node, as
``python -m scalems_like.overlay.node_manager MASTER_ADDRESS UID WORKERS LOG_DIRECTORY`` (srun and mpiexec append
the rank to ``UID``). It

* holds the node's one connection to the master (a DEALER, CurveZMQ with the agent's keys);
* forks the node's ``WORKERS`` workers through its fork server (:mod:`scalems_like.overlay.spawner`) — they start
  in milliseconds, import nothing, share pages — named ``UID.wNNNN``, and more when the master asks
  (:class:`~scalems_like.protocol.StartWorkers`: replacements for workers lost);
* talks to them over a node-local IPC socket (a ROUTER in a ``0700`` directory; no encryption needed on the node);
* hands each worker its tasks of the master's :class:`~scalems_like.protocol.NodeTasks` (one per node and pass of
  the master) as a RunTasks, each task's sandbox set; forwards the master's other messages for a worker to it, and
  the workers' task updates and give-backs to the master, undecoded, batched: one multipart per loop pass (see the
  routed frames in :mod:`scalems_like.protocol.messages`);
* says which workers are ready (:class:`~scalems_like.protocol.NodeHello`) and which ended, with their exit code
  (:class:`~scalems_like.protocol.WorkersExited`) — at once, from the fork server's pidfds;
* heartbeats the master for the whole node, in a heartbeat interval when it sent nothing else (any message from
  the node says it is alive; any from the master, that the master is), and heartbeats its workers itself: a worker
  silent for the heartbeat timeout is killed (SIGKILL) and reported with why.

It stops when the master says so (its workers are told, report what they stopped, and end), when the master falls
silent, or on SIGTERM (its workers are signaled too).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping

import zmq

from scalems_like import protocol
from scalems_like.errors import ProtocolError
from scalems_like.network import message_socket, milliseconds
from scalems_like.overlay.spawner import Spawner, die_with_parent
from scalems_like.overlay.variables import AgentVariables
from scalems_like.protocol import curve
from scalems_like.protocol.curve import AgentKeys

log = logging.getLogger("scalems_like.node_manager")

SMALL = 64
"""Worker messages shorter than this are decoded (heartbeats and hellos stay on the node); longer ones are task
updates and give-backs, forwarded as they are."""
STOP_PATIENCE = 10.0
"""Seconds the manager waits, once stopping, for its workers to end before it exits (the spawner kills the rest)."""


class NodeManager:
    def __init__(self, master_address: str, uid: str, node: str, workers: int, log_directory: str, *,
                 heartbeat_interval: float, heartbeat_timeout: float, keys: AgentKeys | None,
                 environment: Mapping[str, str]) -> None:
        """A manager of the given settings (see :meth:`from_environment`); no I/O."""
        self.master_address = master_address
        self.uid = uid
        self.node = node
        self.initial_workers = workers
        self.log_directory = log_directory
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.keys = keys
        self.environment = dict(environment)
        self.drops = protocol.DropLog(log)
        self.pids: dict[str, int] = {}
        """Workers forked and not yet seen to end, with their pid."""
        self.serving: set[str] = set()
        """Workers that said hello (and have not ended)."""
        self.heard: dict[str, float] = {}
        self.killed: dict[str, str] = {}
        """Workers this manager killed, with why (reported with their exit)."""
        self.ended: set[str] = set()
        self.hellos: list[list[object]] = []
        self.introduced = False
        """This manager said its first NodeHello (it does so in its first pass, with or without workers)."""
        self.exits: list[list[object]] = []
        self.upward: list[bytes] = []
        self.stopping: str | None = None
        self.stop_deadline = 0.0
        self.last_heard = time.time()
        self.last_beat = 0.0
        self.spoke = False
        """Something went to the master since the last heartbeat (then none is due: it hears the node either way)."""
        self.next_worker = 0
        self.local_directory = ""
        self.spawner: Spawner | None = None
        self.context: zmq.Context[zmq.Socket[bytes]] | None = None
        self.master: zmq.Socket[bytes] | None = None
        self.local: zmq.Socket[bytes] | None = None
        self.poller = zmq.Poller()

    @classmethod
    def from_environment(cls, master_address: str, uid: str, workers: int, log_directory: str,
                         environ: Mapping[str, str]) -> NodeManager:
        """A manager configured by the agent's variables (as :meth:`Worker.from_environment
        <scalems_like.overlay.worker.Worker.from_environment>` reads them); a launcher's rank is appended to
        ``uid``."""
        variables = AgentVariables.read(uid, environ, "the node manager")
        return cls(master_address, variables.uid, variables.node, workers, log_directory,
                   heartbeat_interval=variables.heartbeat_interval, heartbeat_timeout=variables.heartbeat_timeout,
                   keys=variables.keys, environment=environ)

    # -- set up --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the fork server (before any ZeroMQ context exists in this process), bind the node-local socket,
        connect to the master, and fork the first workers."""
        temporary = tempfile.gettempdir()  # (a unix socket's path has at most 107 bytes)
        self.local_directory = tempfile.mkdtemp(prefix="scalems-node-", dir=temporary if len(temporary) < 64
                                                else "/tmp")
        address = f"ipc://{self.local_directory}/workers"
        self.spawner = Spawner.start(lambda uid: run_worker(address, uid, self), self.log_directory)
        self.context = zmq.Context()
        self.local = message_socket(self.context.socket(zmq.ROUTER))
        self.local.setsockopt(zmq.LINGER, 0)
        self.local.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.local.bind(address)
        self.master = message_socket(self.context.socket(zmq.DEALER))
        self.master.setsockopt(zmq.LINGER, 2000)
        self.master.setsockopt_string(zmq.IDENTITY, self.uid)
        if self.keys is not None:
            curve.connect_as(self.master, self.keys.agent_public, self.keys.agent_public, self.keys.agent_secret)
        self.master.connect(self.master_address)
        for socket_ in (self.master, self.local):
            self.poller.register(socket_, zmq.POLLIN)
        self.poller.register(self.spawner_connection(), zmq.POLLIN)
        self.start_workers([self.worker_uid() for _ in range(self.initial_workers)])

    def spawner_connection(self) -> int:
        return self._spawner().fileno()

    def _spawner(self) -> Spawner:
        assert self.spawner is not None
        return self.spawner

    def worker_uid(self) -> str:
        uid = f"{self.uid}.w{self.next_worker:04d}"
        self.next_worker += 1
        return uid

    def start_workers(self, uids: list[str]) -> None:
        for uid in uids:
            if self.stopping is None:
                self._spawner().start_worker(uid)

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        while self.stopping is None or (self.pids and time.time() < self.stop_deadline):
            events = dict(self.poller.poll(milliseconds(self.poll_timeout())))
            if self.master in events:
                self.handle_master_messages()
            if self.local in events:
                self.handle_worker_messages()
            if self.spawner_connection() in events:
                self.handle_spawner_reports()
            self.handle_heartbeats()
            self.handle_flush()
        self.collect_last_messages()
        return 0

    def collect_last_messages(self, patience: float = 0.5) -> None:
        """Forward what the workers sent before they ended (their last reports may reach this socket after the fork
        server reported their ends)."""
        assert self.local is not None
        while self.local.poll(milliseconds(patience)):
            self.handle_worker_messages()
            patience = 0.05
        self.handle_flush()

    def poll_timeout(self) -> float:
        if self.stopping is not None:
            return max(0.0, min(self.heartbeat_interval, self.stop_deadline - time.time()))
        return max(0.0, self.last_beat + self.heartbeat_interval - time.time())

    def handle_master_messages(self) -> None:
        assert self.master is not None and self.local is not None
        while True:
            try:
                frames = self.master.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_heard = time.time()
            for worker, data in zip(frames[0::2], frames[1::2], strict=False):
                if worker:
                    self.forward_to_worker(worker, data)
                else:
                    self.handle_own_message(data)

    def forward_to_worker(self, worker: bytes, data: bytes) -> None:
        assert self.local is not None
        try:
            self.local.send_multipart([worker, data])
        except zmq.ZMQError as error:  # the worker is gone (its end is reported by the spawner)
            if error.errno != zmq.EHOSTUNREACH:
                raise
            log.warning("a message for worker %s, which is gone, was dropped", worker.decode())

    def handle_own_message(self, data: bytes) -> None:
        try:
            message = protocol.decode(data, relay=True)  # (each worker checks each of its tasks)
        except ProtocolError as error:
            self.drops.dropped("the master", error)
            return
        if isinstance(message, protocol.NodeTasks):
            for worker, tasks in message.assignments:
                for task in tasks:
                    task["sandbox"] = f"{message.task_root}/{task['uid']}"
                self.forward_to_worker(worker.encode(), protocol.encode(protocol.RunTasks(tasks)))
        elif isinstance(message, protocol.StartWorkers):
            self.start_workers(message.uids)
        elif isinstance(message, protocol.Shutdown):
            self.stop(message.reason)

    def handle_worker_messages(self) -> None:
        assert self.local is not None
        now = time.time()
        while True:
            try:
                worker, data = self.local.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            uid = worker.decode()
            self.heard[uid] = now
            if len(data) >= SMALL:
                self.upward += [worker, data]
                continue
            try:
                message = protocol.decode(data)
            except ProtocolError as error:
                self.drops.dropped(f"worker {uid}", error)
                continue
            if isinstance(message, protocol.WorkerHello):
                if uid not in self.serving and uid not in self.ended:
                    self.serving.add(uid)
                    self.hellos.append([uid, message.pid])
            elif not isinstance(message, protocol.Heartbeat):
                self.upward += [worker, data]

    def handle_spawner_reports(self) -> None:
        self.handle_worker_messages()  # first what the workers said before they ended (sent ahead of their ends)
        for kind, uid, number in self._spawner().read():
            if kind == "pid":
                self.pids[uid] = number
                self.heard[uid] = time.time()
            elif kind == "exit":
                self.pids.pop(uid, None)
                self.ended.add(uid)
                self.serving.discard(uid)
                self.heard.pop(uid, None)
                self.exits.append([uid, number, self.killed.pop(uid, "")])
                if self.stopping is None:
                    log.error("worker %s ended with code %d", uid, number)
            else:  # the fork server is gone: no worker can start or be watched here any more
                self.stop("the node manager's fork server ended")
                self.pids.clear()

    def handle_heartbeats(self) -> None:
        now = time.time()
        if now - self.last_beat < self.heartbeat_interval:
            return
        self.last_beat = now
        beat = protocol.encode(protocol.Heartbeat(now))
        if not self.spoke and not self.upward:  # (whatever it sends says it is alive: 4 096 messages a second
            assert self.master is not None      # fewer at 4 096 nodes)
            self.master.send_multipart([b"", beat])
        self.spoke = False
        for uid in self.serving:
            self.forward_to_worker(uid.encode(), beat)
        if self.stopping is None and now - self.last_heard > self.heartbeat_timeout:
            self.stop(f"master silent for {now - self.last_heard:.0f} s")
        for uid, heard in list(self.heard.items()):
            if now - heard > self.heartbeat_timeout and uid not in self.killed and uid in self.pids:
                self.killed[uid] = f"silent for {now - heard:.0f} s (killed by its node manager)"
                log.error("worker %s %s", uid, self.killed[uid])
                os.kill(self.pids[uid], signal.SIGKILL)

    def handle_flush(self) -> None:
        """Send what this pass gathered, in one multipart: the workers' messages, hellos, exits."""
        if self.hellos or not self.introduced:  # (the first one at once: see NodeHello)
            self.introduced = True
            self.upward += [b"", protocol.encode(protocol.NodeHello(self.node, socket.gethostname(), os.getpid(),
                                                                    self.hellos))]
            self.hellos = []
        if self.exits:
            self.upward += [b"", protocol.encode(protocol.WorkersExited(self.exits))]
            self.exits = []
        if self.upward:
            assert self.master is not None
            self.master.send_multipart(self.upward)
            self.upward = []
            self.spoke = True

    def stop(self, reason: str) -> None:
        """Tell the workers to stop (they report what they stopped); the loop ends once they all ended."""
        if self.stopping is not None:
            return
        log.info("stopping: %s", reason)
        self.stopping = reason
        self.stop_deadline = time.time() + STOP_PATIENCE
        message = protocol.encode(protocol.Shutdown(reason))
        for uid in self.serving:
            self.forward_to_worker(uid.encode(), message)

    def handle_sigterm(self, _signal: int, _frame: object) -> None:
        """SIGTERM (the job ends, or the agent stops us): signal the workers and exit now."""
        for pid in self.pids.values():
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                continue
        os._exit(128 + signal.SIGTERM)

    def close(self) -> None:
        for socket_ in (self.master, self.local):
            if socket_ is not None:
                socket_.close()
        if self.context is not None:
            self.context.term()
        if self.spawner is not None:
            self._spawner().close()
        if self.local_directory:
            shutil.rmtree(self.local_directory, ignore_errors=True)


def run_worker(address: str, uid: str, manager: NodeManager) -> int:
    """In a forked worker: serve the node manager at ``address`` as worker ``uid``."""
    from scalems_like.agent.launch import task_environment
    from scalems_like.overlay.worker import Worker

    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {uid} %(levelname)s %(message)s", force=True,
                        stream=sys.stderr)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker = Worker(address, uid, manager.node, manager.heartbeat_interval, manager.heartbeat_timeout,
                    manager.environment.get("SCALEMS_MPI_LAUNCHER", "none"),
                    task_environment(manager.environment), keys=None)
    try:
        return worker.run()
    finally:
        worker.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4 or not argv[2].isdigit():
        print("usage: python -m scalems_like.overlay.node_manager MASTER_ADDRESS UID WORKERS LOG_DIRECTORY",
              file=sys.stderr)
        return 2
    if os.environ.get("SCALEMS_WORKER_DIE_WITH_PARENT") == "1":
        die_with_parent(signal.SIGTERM, int(os.environ.get("SCALEMS_AGENT_PID", os.getppid())))
    manager = NodeManager.from_environment(argv[0], argv[1], int(argv[2]), argv[3], os.environ)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {manager.uid} %(levelname)s %(message)s")
    import scalems_like.overlay.worker  # noqa: F401 - imported once here, shared by every forked worker

    signal.signal(signal.SIGTERM, manager.handle_sigterm)
    try:
        return manager.run()
    finally:
        manager.close()


if __name__ == "__main__":
    sys.exit(main())
