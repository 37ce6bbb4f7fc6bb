"""A worker process: receives tasks from its master, runs them one at a time, streams updates back.

Started by the agent's launch method as ``python -m scalems_like.overlay.worker MASTER_ADDRESS WORKER_UID``.
When started by an MPI-style launcher (srun, mpiexec), the launcher's rank variable is appended to the uid.

Loop: one ``poll`` (master socket, plus the running executable's pidfd), then the ``handle_*`` steps.
While a *function* runs, an interval timer ticks (SIGALRM) to answer the master: heartbeats, cancels and
the task's timeout are handled from the tick, which raises inside the function when it must stop.

Short tasks arrive pipelined (several queued in the inbox). When the current task has run :data:`GIVE_BACK_AFTER`
seconds, the tasks queued behind it are given back to the master (:class:`~scalems_like.protocol.GiveBack`),
which runs them on other workers: a long task holds up no short one.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import zmq

from scalems_like import protocol
from scalems_like.agent.launch import task_environment
from scalems_like.errors import CancelInterrupt, ProtocolError, TaskTimeout
from scalems_like.network import message_socket, milliseconds
from scalems_like.overlay.execution import Launcher, RunningExecutable, keep_return_value, run_function
from scalems_like.overlay.variables import AgentVariables
from scalems_like.protocol import curve
from scalems_like.protocol.curve import AgentKeys
from scalems_like.protocol.tasks import TaskMapping, TaskUpdate, task_update
from scalems_like.staging.directives import Directive
from scalems_like.staging.runner import outputs_for, run_directives, worker_roots
from scalems_like.states import TaskState

log = logging.getLogger("scalems_like.worker")

FLUSH_INTERVAL = 0.01
"""Updates wait at most this long (while the worker is busy) before they are sent to the master."""
TICK_INTERVAL = 0.5
GIVE_BACK_AFTER = TICK_INTERVAL
"""Seconds the current task runs before the tasks queued behind it are given back (a function's first tick)."""


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent (the agent, for fork launches) dies."""
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    agent = os.environ.get("SCALEMS_AGENT_PID")
    if agent and os.getppid() != int(agent):  # the agent died before the request took effect
        os._exit(128 + signal.SIGTERM)


class Worker:
    def __init__(self, master_address: str, uid: str, node: str, heartbeat_interval: float,
                 heartbeat_timeout: float, mpi_launcher: str, environment: dict[str, str],
                 keys: AgentKeys | None = None) -> None:
        """A worker of the given settings, whose tasks start from ``environment``, connecting with the agent's
        CurveZMQ ``keys`` (None: insecure); no I/O (see :meth:`from_environment` for the settings the agent
        passes in variables)."""
        self.master_address = master_address
        self.uid = uid
        self.node = node
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.mpi_launcher = mpi_launcher
        self.keys = keys
        self.drops = protocol.DropLog(log)
        self.inbox: collections.deque[TaskMapping] = collections.deque()
        self.outbox: list[TaskUpdate] = []
        self.running: RunningExecutable | None = None
        self.current_function: TaskMapping | None = None
        self.staging = False
        self.function_deadline: float | None = None
        self.stopping = False
        self.busy_since: float | None = None
        """When the current task started (its staging included); None while idle."""
        self.last_flush = 0.0
        self.last_sent = 0.0
        self.last_heard = time.time()
        self.environment = environment
        self.launcher = Launcher(mpi_launcher, environment)
        self.context: zmq.Context[zmq.Socket[bytes]] | None = None
        self.socket: zmq.Socket[bytes] | None = None
        self.poller = zmq.Poller()

    @classmethod
    def from_environment(cls, master_address: str, uid: str, environ: Mapping[str, str]) -> Worker:
        """A worker configured by the agent's variables in ``environ`` (the process environment, usually).

        A launcher's rank variable (srun, mpiexec) is appended to ``uid``; the node is SLURM's node name,
        ``SCALEMS_NODE`` or this host's name; tasks start from ``environ`` without the launcher step's variables.
        The keys are read from ``$SCALEMS_PILOT_SANDBOX/keys/agent.json`` unless ``SCALEMS_INSECURE=1``.
        """
        variables = AgentVariables.read(uid, environ, "the worker")
        return cls(master_address, variables.uid, variables.node, variables.heartbeat_interval,
                   variables.heartbeat_timeout, mpi_launcher=environ.get("SCALEMS_MPI_LAUNCHER", "none"),
                   environment=task_environment(dict(environ)), keys=variables.keys)

    # -- plumbing ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.context = zmq.Context()
        self.socket = message_socket(self.context.socket(zmq.DEALER))
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.setsockopt_string(zmq.IDENTITY, self.uid)
        if self.keys is not None:
            curve.connect_as(self.socket, self.keys.agent_public, self.keys.agent_public, self.keys.agent_secret)
        self.socket.connect(self.master_address)
        self.send(protocol.WorkerHello(self.uid, self.node, socket.gethostname(), os.getpid()))

    def send(self, message: protocol.Message) -> None:
        assert self.socket is not None
        self.socket.send(protocol.encode(message))
        self.last_sent = time.time()

    def flush(self) -> None:
        if self.outbox:
            self.send(protocol.TaskUpdates(self.outbox))
            self.outbox = []
        self.last_flush = time.time()

    def update(self, task: TaskMapping, state: TaskState, **fields: Any) -> TaskUpdate:
        entry = task_update(task["uid"], state, time.time(), self.node, worker=self.uid,
                            attempt=task.get("attempt", 0), **fields)
        self.outbox.append(entry)
        return entry

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> int:
        self.connect()
        assert self.socket is not None
        poller = self.poller
        poller.register(self.socket, zmq.POLLIN)
        signal.signal(signal.SIGALRM, self.handle_tick)
        signal.signal(signal.SIGTERM, self.handle_sigterm)
        while not self.stopping or self.running is not None:
            if self.running is None and self.inbox and not self.stopping:
                self.handle_next_task()
                if self.running is None and time.time() - self.last_flush < FLUSH_INTERVAL:
                    self.handle_messages(block=False)
                    continue
            timeout = self.poll_timeout()
            if self.outbox:  # a running executable's updates wait for the next ones, up to FLUSH_INTERVAL
                due = self.last_flush + FLUSH_INTERVAL - time.time()
                if due <= 0 or (self.running is None and not self.inbox):
                    self.flush()
                else:
                    timeout = min(timeout, due)
            events = dict(poller.poll(milliseconds(timeout)))
            if self.socket in events:
                self.handle_messages(block=False)
            self.handle_running_executable(events)
            self.handle_give_back()
            self.handle_heartbeat()
            if time.time() - self.last_heard > self.heartbeat_timeout:
                log.error("master silent for %.0f s; exiting", time.time() - self.last_heard)
                self._request_stop("master lost")
        self.flush()
        return 0

    def poll_timeout(self) -> float:
        """Seconds the next poll may block."""
        if self.inbox and self.running is None and not self.stopping:
            return 0.0
        now = time.time()
        limit = self.last_sent + self.heartbeat_interval - now
        if self.running is not None:
            for moment in (self.running.deadline, self.running.kill_at):
                if moment is not None:
                    limit = min(limit, moment - now)
            if self.inbox and self.busy_since is not None:
                limit = min(limit, self.busy_since + GIVE_BACK_AFTER - now)
        return max(0.0, limit)

    def handle_messages(self, *, block: bool) -> None:
        assert self.socket is not None
        flags = 0 if block else zmq.NOBLOCK
        while True:
            try:
                data = self.socket.recv(flags)
            except zmq.Again:
                return
            flags = zmq.NOBLOCK
            self.last_heard = time.time()
            try:
                message = protocol.decode(data)
            except ProtocolError as error:
                self.drops.dropped("the master", error)
                continue
            if isinstance(message, protocol.RunTasks):
                self.inbox.extend(message.tasks)
            elif isinstance(message, protocol.CancelTasks):
                self.handle_cancel(set(message.uids))
            elif isinstance(message, protocol.Shutdown):
                self._request_stop(message.reason)

    def handle_cancel(self, uids: set[str]) -> None:
        kept: collections.deque[TaskMapping] = collections.deque()
        for task in self.inbox:
            if task["uid"] in uids:
                self.update(task, TaskState.CANCELED, reason="canceled before it started")
            else:
                kept.append(task)
        self.inbox = kept
        if self.running is not None and self.running.task["uid"] in uids:
            self.running.terminate("cancel")
        if self.current_function is not None and self.current_function["uid"] in uids:
            raise CancelInterrupt(self.current_function["uid"])

    def _request_stop(self, reason: str) -> None:
        log.info("stopping: %s", reason)
        self.stopping = True
        for task in self.inbox:
            self.update(task, TaskState.CANCELED, reason=f"worker stopped before the task started: {reason}")
        self.inbox.clear()
        if self.running is not None:
            self.running.terminate("cancel", grace=1.0)

    def handle_give_back(self) -> None:
        """Give the master back the tasks queued behind a task that has run :data:`GIVE_BACK_AFTER` s."""
        if self.inbox and self.busy_since is not None and time.time() - self.busy_since >= GIVE_BACK_AFTER:
            uids = [task["uid"] for task in self.inbox]
            self.inbox.clear()
            self.send(protocol.GiveBack(uids))

    def handle_next_task(self) -> None:
        task = self.inbox.popleft()
        self.busy_since = time.time()
        try:
            self.start_task(task)
        finally:
            if self.running is None:  # (a function ran to its end; an executable runs on: its end clears it)
                self.busy_since = None

    def start_task(self, task: TaskMapping) -> None:
        """Stage the task's inputs and run it: a function to its end, an executable started."""
        reason = self.stage(task, "input")
        if reason is not None:
            self.update(task, TaskState.FAILED, reason=reason)
            return
        if task["kind"] == "function":
            self.run_function_task(task)
            return
        started = self.launcher.start(task)
        if isinstance(started, str):
            self.update(task, TaskState.FAILED, reason=started, exit_code=127)
        else:
            self.running = started
            self.poller.register(started.pidfd, zmq.POLLIN)
            self.update(task, TaskState.RUNNING, pid=started.pid)

    def run_function_task(self, task: TaskMapping) -> None:
        started = time.time()
        self.update(task, TaskState.RUNNING)
        result: dict[str, Any] = {}  # (run_function fills it: state, value or exception, output)
        self.current_function = task
        timeout = task.get("timeout")
        self.function_deadline = started + timeout if timeout else None
        first_tick = min(TICK_INTERVAL, timeout) if timeout else TICK_INTERVAL
        signal.setitimer(signal.ITIMER_REAL, first_tick, TICK_INTERVAL)
        try:
            try:
                run_function(task, cast(TaskUpdate, result))
                keep_return_value(task, cast(TaskUpdate, result))  # (a large value to a file, the timer ticking)
            finally:
                self.current_function = None  # first: a tick that still comes finds nothing to stop
                signal.setitimer(signal.ITIMER_REAL, 0)
        except (TaskTimeout, CancelInterrupt) as late:  # a tick at the very edge of run_function
            if "state" not in result:
                canceled = isinstance(late, CancelInterrupt)
                result.update(state=TaskState.CANCELED.value if canceled else TaskState.FAILED.value,
                              reason="canceled while running" if canceled else f"timed out after {task['timeout']} s")
        state = TaskState(result.pop("state"))
        self.finish_with_outputs(task, self.update(task, state, started=started, **result))

    def stage(self, task: TaskMapping, phase: str, state: str | None = None) -> str | None:
        """Run the task's input or output directives (with heartbeats going on); returns why they failed."""
        wire: list[Any] = (task.get("input_staging") if phase == "input" else task.get("output_staging")) or []
        directives = [Directive.from_wire(item) for item in wire]
        if state is not None:
            directives = outputs_for(directives, state)
        if not directives:
            return None
        Path(task["sandbox"]).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.staging = True
        signal.setitimer(signal.ITIMER_REAL, TICK_INTERVAL, TICK_INTERVAL)
        try:
            return run_directives(directives, worker_roots(task), phase)
        finally:
            self.staging = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def finish_with_outputs(self, task: TaskMapping, update: TaskUpdate) -> None:
        """Stage a finished task's outputs before its final state goes out; a failed output fails the task."""
        reason = self.stage(task, "output", update["state"])
        if reason is None:
            return
        if update["state"] == TaskState.DONE:
            update["state"], update["reason"] = TaskState.FAILED.value, reason
        else:
            update["reason"] = f"{update.get('reason', update['state'])}; {reason}"
        update["time"] = time.time()

    def handle_tick(self, _signal: int, _frame: Any) -> None:
        """SIGALRM while a function runs or staging goes on: talk to the master, enforce the timeout."""
        if self.staging:
            self.handle_give_back()
            self.handle_heartbeat()
            return
        if self.current_function is None:
            return
        if self.function_deadline is not None and time.time() >= self.function_deadline:
            raise TaskTimeout(self.current_function["uid"])
        self.flush()
        self.handle_messages(block=False)  # raises CancelInterrupt if this task was canceled
        if self.stopping:
            raise CancelInterrupt(self.current_function["uid"])
        self.handle_give_back()
        self.handle_heartbeat()

    def handle_running_executable(self, events: dict[Any, int]) -> None:
        running = self.running
        if running is None:
            return
        now = time.time()
        if running.pidfd in events:
            update = self.update(running.task, TaskState.FAILED, started=running.started)
            self.poller.unregister(running.pidfd)
            running.finish(update)
            self.running = None
            self.finish_with_outputs(running.task, update)
            self.busy_since = None
        elif running.kill_at is not None and now >= running.kill_at:
            running.escalate()
        elif running.deadline is not None and now >= running.deadline and running.ended_by is None:
            running.terminate("timeout")

    def handle_sigterm(self, _signal: int, _frame: Any) -> None:
        """SIGTERM (from the agent, or because the agent died): kill the running task's group and exit now."""
        if self.running is not None:
            self.running.escalate()
        os._exit(128 + signal.SIGTERM)

    def handle_heartbeat(self) -> None:
        if time.time() - self.last_sent >= self.heartbeat_interval:
            self.send(protocol.Heartbeat(time.time()))

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        if self.context is not None:
            self.context.term()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m scalems_like.overlay.worker MASTER_ADDRESS WORKER_UID", file=sys.stderr)
        return 2
    if os.environ.get("SCALEMS_WORKER_DIE_WITH_PARENT") == "1":
        _die_with_parent()
    worker = Worker.from_environment(argv[0], argv[1], os.environ)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {worker.uid} %(levelname)s %(message)s")
    try:
        if os.environ.get("SCALEMS_LIKE_PROFILE_WORKER") == "1":  # for benchmarks: PILOT_SANDBOX/workers/UID.prof
            import cProfile

            with cProfile.Profile() as profile:
                code = worker.run()
            profile.dump_stats(Path(os.environ["SCALEMS_PILOT_SANDBOX"]) / "workers" / f"{worker.uid}.prof")
            return code
        return worker.run()
    finally:
        worker.close()


if __name__ == "__main__":
    sys.exit(main())
