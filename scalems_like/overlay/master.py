"""The master: the agent's event loop between the client and the workers.

One ``poll`` over the client socket, the worker socket and the worker processes, then a fixed list of steps::

    handle_client_messages   submit / cancel / shutdown / heartbeat from the client
    handle_worker_messages   hellos, task updates and heartbeats from workers
    handle_worker_exits      a worker process that ended takes its tasks with it (retried or FAILED)
    handle_schedule          give queued tasks to workers (see scheduler.py)
    handle_deadlines         pilot runtime end, silent client, silent workers
    handle_heartbeats        tell the client and the workers we are alive
    handle_flush             send the batched task updates to the client
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import zmq

from scalems_like import protocol
from scalems_like.agent.config import AgentConfig
from scalems_like.agent.nodes import Node
from scalems_like.errors import ProtocolError
from scalems_like.network import bind_and_advertise, unbounded
from scalems_like.overlay.scheduler import Scheduler
from scalems_like.protocol.feedback import parse_events

log = logging.getLogger("scalems_like.master")

FINAL = {"DONE", "FAILED", "CANCELED"}


def read_bootstrap_events(sandbox: Path) -> list[list[object]]:
    """The bootstrap's events, as lists for the wire."""
    try:
        return [list(event) for event in parse_events((sandbox / "bootstrap" / "events").read_text(errors="replace"))]
    except OSError:
        return []


class Master:
    def __init__(self, config: AgentConfig, nodes: list[Node], per_node: int, width: int) -> None:
        self.config = config
        self.nodes = nodes
        self.per_node = per_node
        self.width = width
        self.scheduler = Scheduler(width=width)
        for node in nodes:
            self.scheduler.add_node(node.name, node.cores, node.gpus, workers=per_node)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.outbox: list[dict[str, Any]] = []
        self.worker_seen: dict[str, float] = {}
        self.processes: dict[int, tuple[subprocess.Popen[bytes], str]] = {}  # pidfd → (process, uid prefix)
        self.deadline = time.time() + config.runtime - min(30.0, 0.05 * config.runtime)
        self.client_seen = time.time()
        self.last_heartbeat = 0.0
        self.stop_reason: tuple[str, str] | None = None  # (final pilot state, reason)
        self.host = socket.gethostname()
        self.task_root = Path(config.pilot_sandbox) / "tasks"
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.client = unbounded(self.context.socket(zmq.DEALER))
        self.workers = unbounded(self.context.socket(zmq.ROUTER))
        self.poller = zmq.Poller()

    # -- set up --------------------------------------------------------------------------------------
    def bind_workers(self) -> str:
        """Bind the worker socket; returns the address workers connect to."""
        self.workers.setsockopt(zmq.LINGER, 0)
        self.workers.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.poller.register(self.workers, zmq.POLLIN)
        return bind_and_advertise(self.workers, self.config.agent_address)

    def connect_client(self) -> None:
        self.client.setsockopt(zmq.LINGER, 5000)
        self.client.setsockopt_string(zmq.IDENTITY, self.config.pilot_uid)
        self.client.connect(self.config.client_address)
        self.poller.register(self.client, zmq.POLLIN)
        nodes = [[node.name, node.cores, node.gpus] for node in self.nodes]
        self.send_client(protocol.Hello(self.config.pilot_uid, self.host, os.getpid(), nodes, time.time()))
        self.send_client(protocol.BootstrapEvents(read_bootstrap_events(Path(self.config.pilot_sandbox))))

    def watch(self, processes: list[tuple[subprocess.Popen[bytes], str]]) -> None:
        """Watch launched processes; each is given with the uid (prefix) of the workers it runs."""
        for process, prefix in processes:
            pidfd = os.pidfd_open(process.pid)
            self.processes[pidfd] = (process, prefix)
            self.poller.register(pidfd, zmq.POLLIN)

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> tuple[str, str]:
        """Serve until shutdown or runtime end; returns (final pilot state, reason)."""
        while self.stop_reason is None:
            events = dict(self.poller.poll(self.poll_timeout() * 1000))
            if self.client in events:
                self.handle_client_messages()
            if self.workers in events:
                self.handle_worker_messages()
            self.handle_worker_exits(events)
            self.handle_schedule()
            self.handle_deadlines()
            self.handle_heartbeats()
            self.handle_flush()
        self.stop_everything(self.stop_reason[1])
        return self.stop_reason

    def poll_timeout(self) -> float:
        now = time.time()
        return max(0.0, min(self.last_heartbeat + self.config.heartbeat_interval, self.deadline) - now)

    def handle_client_messages(self) -> None:
        for message in self._receive(self.client):
            self.client_seen = time.time()
            if isinstance(message, protocol.SubmitTasks):
                self.accept(message.tasks)
            elif isinstance(message, protocol.CancelTasks):
                self.cancel(message.uids)
            elif isinstance(message, protocol.Shutdown):
                self.stop_reason = ("DONE", f"shut down by the client: {message.reason}")

    def handle_worker_messages(self) -> None:
        while True:
            try:
                identity, data = self.workers.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            worker = identity.decode()
            self.worker_seen[worker] = time.time()
            try:
                message = protocol.decode(data)
            except ProtocolError as error:
                log.error("dropped a message from worker %s: %s", worker, error)
                continue
            if isinstance(message, protocol.TaskUpdates):
                self.handle_task_updates(message.updates)
            elif isinstance(message, protocol.WorkerHello):
                node = message.node if message.node in self.scheduler.nodes else self.nodes[0].name
                log.info("worker %s (pid %d) ready on node %s", worker, message.pid, node)
                self.scheduler.add_worker(worker, node)

    def handle_task_updates(self, updates: list[dict[str, Any]]) -> None:
        for update in updates:
            uid = update.get("uid")
            task = self.tasks.get(uid) if isinstance(uid, str) else None
            if task is None:
                continue
            if update["state"] not in FINAL:
                if "pid" in update:
                    task["pid"], task["host"] = update["pid"], update.get("host")
                self.outbox.append(update)
                continue
            self.scheduler.finished(uid)
            if "started" in update:
                self.scheduler.observe_duration(update["time"] - update["started"])
            if update["state"] == "FAILED" and task["attempt"] < task["retries"] and self.stop_reason is None:
                self.retry(task, update["reason"])
                continue
            del self.tasks[uid]
            self.outbox.append(update)

    def retry(self, task: dict[str, Any], reason: str) -> None:
        task["attempt"] += 1
        self.outbox.append(self._update(task, "QUEUED", reason=(
            f"retry {task['attempt']} of {task['retries']} after: {reason}")))
        self.scheduler.submit([task])

    def handle_worker_exits(self, events: dict[Any, int]) -> None:
        for pidfd in [fd for fd in events if isinstance(fd, int) and fd in self.processes]:
            process, prefix = self.processes.pop(pidfd)
            self.poller.unregister(pidfd)
            os.close(pidfd)
            code = process.wait()
            log.error("worker process %d (%s) ended with code %d", process.pid, prefix, code)
            for worker in [w for w in self.scheduler.workers if w == prefix or w.startswith(prefix + ".")]:
                self.lose_worker(worker, f"its process ended with code {code}")
        if not self.processes and self.stop_reason is None and not self.termination_signaled(1.0):
            logs = sorted((Path(self.config.pilot_sandbox) / "workers").glob("*.log"))
            tail = logs[0].read_text(errors="replace").strip().splitlines()[-10:] if logs else []
            self.stop_reason = ("FAILED", f"every worker process ended; {logs[0] if logs else 'the worker log'} "
                                "ends with:\n" + "\n".join(tail))

    def termination_signaled(self, patience: float) -> bool:
        """Wait up to ``patience`` s for a SIGTERM: when the batch system ends a job, the workers' step often
        dies a moment before the agent hears of it, and the job's end is the better explanation."""
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        try:
            if signal.sigtimedwait([signal.SIGTERM], patience) is None:
                return False
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        signal.raise_signal(signal.SIGTERM)  # let the agent's handler say why
        return True

    def lose_worker(self, worker: str, why: str) -> None:
        if worker not in self.scheduler.workers:
            return
        self.worker_seen.pop(worker, None)
        for uid in self.scheduler.remove_worker(worker):
            task = self.tasks[uid]
            self.kill_orphan(task)
            reason = f"worker {worker} lost: {why}"
            if task["attempt"] < task["retries"] and self.stop_reason is None:
                self.retry(task, reason)
            else:
                del self.tasks[uid]
                self.outbox.append(self._update(task, "FAILED", reason=reason))

    def kill_orphan(self, task: dict[str, Any]) -> None:
        """Kill the process group of an executable whose worker died (it runs in a session of its own)."""
        pid = task.pop("pid", None)
        if pid is not None and task.pop("host", None) in (self.nodes[0].name, self.host):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            log.warning("killed the process group %d of task %s, whose worker was lost", pid, task["uid"])

    def handle_schedule(self) -> None:
        assignments = self.scheduler.schedule()
        for task, reason in self.scheduler.take_rejected():  # workers were lost: it can never run here
            self.tasks.pop(task["uid"], None)
            self.outbox.append(self._update(task, "FAILED", reason=reason))
        for worker, tasks in assignments.items():
            self.workers.send_multipart([worker.encode(), protocol.encode(protocol.RunTasks(tasks))])

    def handle_deadlines(self) -> None:
        now = time.time()
        if now >= self.deadline:
            self.stop_reason = ("DONE", f"pilot runtime of {self.config.runtime:g} s ended")
        elif now - self.client_seen > self.config.heartbeat_timeout:
            self.stop_reason = ("FAILED", f"client silent for {now - self.client_seen:.0f} s")
        for worker, seen in list(self.worker_seen.items()):
            if now - seen > self.config.heartbeat_timeout:
                self.lose_worker(worker, f"silent for {now - seen:.0f} s")

    def handle_heartbeats(self) -> None:
        now = time.time()
        if now - self.last_heartbeat < self.config.heartbeat_interval:
            return
        self.last_heartbeat = now
        beat = protocol.encode(protocol.Heartbeat(now))
        self.client.send(beat)
        for worker in self.scheduler.workers:
            self.workers.send_multipart([worker.encode(), beat])

    def handle_flush(self) -> None:
        if self.outbox:
            self.client.send(protocol.encode(protocol.TaskUpdates(self.outbox)))
            self.outbox = []

    def request_stop(self, state: str, reason: str) -> None:
        """Ask the loop to end (from a signal handler, say)."""
        if self.stop_reason is None:
            self.stop_reason = (state, reason)

    # -- actions -------------------------------------------------------------------------------------
    def accept(self, tasks: list[dict[str, Any]]) -> None:
        accepted = []
        for task in tasks:
            task["sandbox"] = str(self.task_root / task["uid"])
            task["attempt"] = 0
            reason = self.scheduler.unsatisfiable_reason(task)
            if reason is not None:
                self.outbox.append(self._update(task, "FAILED", reason=reason))
                continue
            self.tasks[task["uid"]] = task
            accepted.append(task)
            self.outbox.append(self._update(task, "QUEUED"))
        self.scheduler.submit(accepted)

    def cancel(self, uids: list[str]) -> None:
        by_worker: dict[str, list[str]] = {}
        for uid in uids:
            where = self.scheduler.cancel(uid)
            if where == "pending":
                task = self.tasks.pop(uid)
                self.outbox.append(self._update(task, "CANCELED", reason="canceled before it started"))
            elif where is not None:
                by_worker.setdefault(where, []).append(uid)
        for worker, worker_uids in by_worker.items():
            self.workers.send_multipart([worker.encode(), protocol.encode(protocol.CancelTasks(worker_uids))])

    def stop_everything(self, reason: str) -> None:
        """Stop queued and running tasks, stop the workers, report, and close the sockets.

        On a client shutdown the stopped tasks end CANCELED; on runtime end or a failure they end FAILED.
        """
        assert self.stop_reason is not None
        state = "CANCELED" if reason.startswith("shut down by the client") else "FAILED"
        for task in self.scheduler.drain_pending():
            self.tasks.pop(task["uid"], None)
            self.outbox.append(self._update(task, state, reason=f"{reason} before the task started"))
        shutdown = protocol.encode(protocol.Shutdown(reason))
        for worker in self.scheduler.workers:
            self.workers.send_multipart([worker.encode(), shutdown])
        self.collect_last_updates()
        for update in self.outbox:  # the workers report what they stopped as CANCELED; say why
            if update["state"] == "CANCELED" and update.get("worker"):
                update["state"] = state
                update["reason"] = f"{reason} while the task ran"
        for task in self.tasks.values():
            self.outbox.append(self._update(task, state, reason=f"{reason} while the task ran"))
        self.tasks.clear()
        self.handle_flush()
        self.send_client(protocol.AgentStopping(*self.stop_reason))
        for process, _ in self.processes.values():
            if process.poll() is None:
                process.terminate()
        self.client.close()
        self.workers.close()
        self.context.term()

    def collect_last_updates(self, patience: float = 5.0) -> None:
        """Give the workers ``patience`` seconds to report the tasks they were running."""
        end = time.time() + patience
        while self.tasks and time.time() < end and self.scheduler.workers:
            if self.workers.poll(max(0.0, end - time.time()) * 1000):
                self.handle_worker_messages()

    # -- helpers -------------------------------------------------------------------------------------
    def _update(self, task: dict[str, Any], state: str, **fields: Any) -> dict[str, Any]:
        return {"uid": task["uid"], "state": state, "time": time.time(), "host": self.host,
                "attempt": task.get("attempt", 0), **fields}

    def _receive(self, sock: zmq.Socket[bytes]) -> list[protocol.Message]:
        messages = []
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return messages
            try:
                messages.append(protocol.decode(data))
            except ProtocolError as error:
                log.error("dropped a message from the client: %s", error)

    def send_client(self, message: protocol.Message) -> None:
        self.client.send(protocol.encode(message))
