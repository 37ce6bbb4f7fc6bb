"""The master's care of its workers: a worker that died is replaced, its tasks charged, a failing node taken out;
a node whose manager is lost (its process ended, it fell silent, its connection went) goes out of the schedule.

:class:`WorkerCare` is a part of :class:`~scalems_like.overlay.master.Master` (its steps run in the master's
loop, on the master's state); the policy it applies — reasons, who pays, which node goes — is
:mod:`scalems_like.overlay.healing`, apart from processes and sockets so that a node manager can apply it too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalems_like import protocol
from scalems_like.agent.config import AgentConfig
from scalems_like.agent.launch import Launched, WorkerLauncher
from scalems_like.agent.nodes import Node
from scalems_like.overlay.healing import NodeHealth, charge, death_reason, running_reason
from scalems_like.overlay.scheduler import Scheduler
from scalems_like.overlay.worker_processes import (
    WorkerProcesses,
    ended_by_sigterm,
    launcher_report,
    termination_signaled,
    worker_log_tail,
)
from scalems_like.protocol.tasks import TaskUpdate
from scalems_like.states import PilotState, TaskState

log = logging.getLogger("scalems_like.master")


@dataclasses.dataclass(frozen=True)
class Stop:
    """Why the master loop ends: the pilot's final state and why, and the state its unfinished tasks end in
    (CANCELED when the client asked for the end, FAILED otherwise)."""

    pilot_state: PilotState
    reason: str
    tasks_end: TaskState = TaskState.FAILED


class WorkerCare:
    """The master's steps and actions for workers that die (a part of the master: the attributes below are its)."""

    config: AgentConfig
    nodes: list[Node]
    host: str
    scheduler: Scheduler
    processes: WorkerProcesses
    launcher: WorkerLauncher | None
    health: NodeHealth
    tasks: dict[str, dict[str, Any]]
    lost_workers: set[str]
    manager_seen: dict[str, float]
    manager_node: dict[str, str]
    node_manager: dict[str, str]
    replacements: int
    pids: dict[str, tuple[int, str | None]]
    canceling: set[str]
    stop_reason: Stop | None
    joined: set[str]
    node_launchers: dict[str, Launched]

    if TYPE_CHECKING:  # the master's own
        def record(self, component: str, where: str, event: str, uid: str, detail: str = "") -> None: ...
        def finish(self, task: dict[str, Any], update: TaskUpdate, state: TaskState) -> None: ...
        def cancel_pending(self, uid: str, reason: str) -> None: ...
        def send_worker(self, worker: str, message: protocol.Message, manager: str | None = None) -> bool: ...
        def send_manager(self, manager: str, message: protocol.Message, worker: str = "") -> bool: ...
        def _update(self, task: dict[str, Any], state: TaskState, **fields: Any) -> TaskUpdate: ...

    def handle_worker_exits(self, events: dict[Any, int]) -> None:
        """Launcher processes that ended (a node manager, the ssh that ran one, the srun step of all): their nodes
        are lost."""
        for launched, code in self.processes.ended(events):
            if ended_by_sigterm(code) and self.stop_reason is None:
                termination_signaled()  # the job's end reached the managers first: wait for the agent's own
            if self.stop_reason is not None:  # the pilot is ending anyway: its reason is the better one
                log.info("launcher process %d (%s) ended with code %d", launched.process.pid, launched.prefix, code)
                continue
            log.error("launcher process %d (%s) %s", launched.process.pid, launched.prefix, death_reason(code))
            for manager, node in launched.managers:
                if manager in self.manager_seen:
                    self.manager_lost(manager, f"its node manager {manager} {death_reason(code)}", launched)
                elif manager not in self.manager_node and not self.health.is_out(node):
                    self.take_node_out(node, f"its node manager {manager} {death_reason(code)} before it said hello",
                                       launched)

    def manager_lost(self, manager: str, why: str, launched: Launched | None = None) -> None:
        """A node manager is gone (node failure, its process killed): its node goes out of the schedule, the tasks
        its workers ran are charged (retried elsewhere if they have retries left)."""
        node = self.manager_node[manager]
        self.manager_seen.pop(manager, None)
        if self.node_manager.get(node) == manager:
            del self.node_manager[node]
        if self.stop_reason is None and not self.health.is_out(node):
            self.take_node_out(node, f"node lost: {why}", launched)

    def worker_died(self, worker: str, node: str, why: str, *, ended: bool, launched: Launched | None = None) -> None:
        """A worker is gone (``ended``: its process ended; else it fell silent or its node went): its tasks are
        charged (see :func:`~scalems_like.overlay.healing.charge`), a death under no task counts against its node,
        and its node's manager starts a replacement unless the node is out of the schedule. ``launched``: the
        process reported if the node goes out."""
        if worker in self.scheduler.workers:
            node = self.scheduler.workers[worker].node  # (where it said it runs)
            ran = self.lose_worker(worker, why, ended=ended)
        else:  # it ended before its hello
            ran = False
            self.lost_workers.add(worker)
            self.scheduler.worker_never_came(node)
            self.record("worker", node, "lost", worker, f"{why} (before it said hello)")
        if self.stop_reason is not None or self.health.is_out(node):
            return
        out = None if ran else self.health.worker_died(node, why, time.time())
        if out is not None:
            self.take_node_out(node, out, launched)
        else:
            self.replace_worker(node, why)

    def replace_worker(self, node: str, why: str) -> None:
        """Ask ``node``'s manager to fork a worker in place of one lost (nothing if the node has no live manager,
        or nobody started the managers)."""
        manager = self.node_manager.get(node)
        if self.launcher is None or manager is None:
            return
        self.replacements += 1
        uid = f"{manager}.r{self.replacements:04d}"
        if self.send_manager(manager, protocol.StartWorkers([uid])):
            self.scheduler.expect_worker(node)
            self.record("worker", node, "replace", uid, f"after: {why}")

    def take_node_out(self, node: str, reason: str, launched: Launched | None = None) -> None:
        """No more tasks on ``node``: its workers are stopped (their running tasks retried elsewhere or FAILED);
        the pilot fails if no node is left. A node none of whose workers ever said hello is reported with how its
        launcher (``launched``, else its latest) stands and how its output ends."""
        launched = launched or self.node_launchers.get(node)
        if node not in self.joined and launched is not None:
            reason = f"{reason}; {launcher_report(launched)}"
        self.health.take_out(node, reason)
        log.error("node %s taken out of the schedule: %s", node, reason)
        self.record("node", node, "out", "", reason)
        for worker in self.scheduler.close_node(node):
            self.refuse(worker, node)
        manager = self.node_manager.pop(node, None)
        if manager is not None:  # it ends, with whatever of its workers still runs (their deaths are not charged)
            self.manager_seen.pop(manager, None)
            self.send_manager(manager, protocol.Shutdown(f"node {node} is out of the schedule: {reason}"))
        if self.health.all_out(self.scheduler.nodes) and self.stop_reason is None:
            termination_signaled()  # a job's end (scancel, walltime) often takes the nodes first: its reason is better
        if self.health.all_out(self.scheduler.nodes) and self.stop_reason is None:
            self.stop_reason = Stop(PilotState.FAILED, f"every node of this pilot is out of the schedule: "
                                    f"{self.health.summary()}; " + worker_log_tail(Path(self.config.pilot_sandbox)))

    def refuse(self, worker: str, node: str, manager: str | None = None) -> None:
        """Stop a worker of a node out of the schedule (it said hello late through ``manager``, or ran there when the
        node went out)."""
        why = f"node {node} is out of the schedule: {self.health.out[node]}"
        self.send_worker(worker, protocol.Shutdown(why), manager)
        self.lose_worker(worker, why)
        self.lost_workers.add(worker)

    def lose_worker(self, worker: str, why: str, *, ended: bool = False) -> bool:
        """Forget a worker: the task it ran is charged (retried or FAILED), those queued behind it queue again.
        Returns whether it had a task to charge."""
        if worker not in self.scheduler.workers:
            return False
        node = self.scheduler.workers[worker].node
        log.error("worker %s lost: %s", worker, why)
        self.record("worker", node, "lost", worker, why)
        self.lost_workers.add(worker)
        ran, queued = charge(self.scheduler.remove_worker(worker))
        for uid in [uid for uid in queued if uid in self.canceling]:
            self.cancel_pending(uid, "canceled before it started (its worker was lost)")
        self.scheduler.requeue([self.tasks[uid] for uid in queued if uid in self.tasks])
        if ran is None:
            return False
        task = self.tasks[ran]
        self.kill_orphan(task)
        if ran in self.canceling:
            self.cancel_pending(ran, f"canceled while running (its worker was lost: {why})")
        elif self.stop_reason is None:  # (else the pilot is ending: its tasks end with its reason, stop_everything)
            reason = (f"{running_reason(why)} (worker {worker} on node {node})" if ended
                      else f"worker {worker} lost: {why}")
            self.finish(task, self._update(task, TaskState.FAILED, reason=reason), TaskState.FAILED)
        return True

    def kill_orphan(self, task: dict[str, Any]) -> None:
        """Kill the process group of an executable whose worker died (it runs in a session of its own)."""
        pid, host = self.pids.pop(task["uid"], (None, None))
        if pid is not None and host in (self.nodes[0].name, self.host):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            log.warning("killed the process group %d of task %s, whose worker was lost", pid, task["uid"])
