"""The master's scheduler: which worker runs which task, by the task's core and GPU needs. Pure, no I/O.

Each node has workers; each worker owns ``width`` cores of its node. A task needs
``ceil(cores * ranks / width)`` workers on one node and ``gpus * ranks`` of the node's GPUs.

* **Simple tasks** (one worker, no GPU) are pipelined: each worker gets a short queue of them so that it never
  waits for the master between two short tasks. The queue depth adapts to the observed task duration so that
  about ``target_queue_seconds`` of work waits at a worker (1 for long tasks, up to ``max_depth`` for tiny ones).
  Idle workers are served first, and the depth stays 1 until every worker started has said hello (a task queued at
  a worker stays there: the late workers would otherwise find the work taken). A worker whose current task runs
  long gives back what was queued behind it (:meth:`Scheduler.give_back`): those tasks go to the head of the queue,
  and that worker gets no more until its queue is empty.
* **Placed tasks** (several workers, or GPUs) wait until enough workers are idle: on one node if the task fits
  one, else — for ``ranks`` > 1 — rank by rank across nodes (``task["placement"]`` lists ``[node, ranks]``). The
  first placed task that cannot start *reserves* workers: they get no new simple tasks, drain, and then run it
  (one of them executes the launcher; the others are held until it ends). Simple tasks backfill the rest. A
  reservation is returned when its task starts, is canceled, drained or rejected.

The pilot's *capacity* is its workers times ``width`` cores (not its nodes' cores): each node counts the workers
the agent started there (said hello or not yet, replacements included) minus those lost; a node taken out of the
schedule (:meth:`Scheduler.close_node`: its workers kept dying) counts none. A task that needs more than that is
*rejected* — at submission (see :meth:`Scheduler.unsatisfiable_reason`) or, once workers were lost, when it
reaches the head of its queue — with a reason naming what it asked and what the pilot has
(:meth:`Scheduler.take_rejected`); the queue goes on behind it.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from typing import Any

from scalems_like.overlay.slots import NodeSlots, OpenWorkers, Placement, WorkerSlots, without

__all__ = ["NodeSlots", "Placement", "Scheduler", "WorkerSlots"]

NAMED_NODES = 8
"""Nodes out of the schedule a rejection's reason names (the others are counted): every rejected task carries its
reason, and at 4 096 nodes out a reason naming them all took 50 KB a task (20 GB for a window of tasks)."""


class Scheduler:
    def __init__(self, *, width: int = 1, target_queue_seconds: float = 0.02, max_depth: int = 1024,
                 initial_depth: int = 1) -> None:
        self.nodes: dict[str, NodeSlots] = {}
        self.workers: dict[str, WorkerSlots] = {}
        self.width = width
        """Cores per worker, known from the start (the agent decides it before starting the workers)."""
        self._rejected: list[tuple[dict[str, Any], str]] = []
        self._simple: collections.deque[dict[str, Any]] = collections.deque()
        self._placed: collections.deque[dict[str, Any]] = collections.deque()
        self._canceled: set[str] = set()
        self._pending_uids: set[str] = set()
        self._placements: dict[str, Placement] = {}
        self._worker_of: dict[str, str] = {}
        self._mean_duration: float | None = None
        self._target = target_queue_seconds
        self._max_depth = max_depth
        self._initial_depth = initial_depth
        self.changed_nodes: set[str] = set()
        """Nodes whose serving workers changed (a worker joined or left, the node went out) since the master last
        reported how much of the pilot serves (it empties the set)."""
        self._capacity = 0
        """The sum of the nodes' :attr:`NodeSlots.worker_capacity`, kept as they change (:meth:`_node_changed`)."""
        self._starting: set[str] = set()
        """The nodes where some workers started have not said hello yet (:attr:`NodeSlots.starting`)."""
        self._open = OpenWorkers()
        self._reservations: dict[str, list[WorkerSlots]] = {}
        """Placed task uid → the workers it reserved (they drain for it), until it starts or is dropped."""

    # -- resources ------------------------------------------------------------------------------------
    def add_node(self, name: str, cores: int, gpus: int, workers: int | None = None) -> None:
        """A node of ``cores`` cores and ``gpus`` GPUs, where the agent starts ``workers`` workers
        (default: as many as ``width`` allows)."""
        expected = cores // self.width if workers is None else workers
        node = self.nodes[name] = NodeSlots(name, cores, list(range(gpus)), gpus, 0)
        self._node_changed(node, expected_workers=expected)

    def _node_changed(self, node: NodeSlots, *, expected_workers: int = 0, workers: str = "", lost_workers: int = 0,
                      closed: bool = False) -> None:
        """Change ``node`` (more workers expected, one joined, more lost, closed) and keep the counters."""
        before = node.worker_capacity
        node.expected_workers += expected_workers
        if workers:
            node.workers.append(workers)
        node.lost_workers += lost_workers
        node.closed = node.closed or closed
        self._capacity += node.worker_capacity - before
        if node.starting:
            self._starting.add(node.name)
        else:
            self._starting.discard(node.name)

    def add_worker(self, uid: str, node: str, manager: str = "") -> None:
        """Worker ``uid`` said hello on ``node``, through node manager ``manager``."""
        slots = self.nodes[node]
        self.workers[uid] = WorkerSlots(uid, slots.name, self._open, manager)  # (one string of the node's name for all)
        self._node_changed(slots, workers=uid)
        self.changed_nodes.add(node)

    def remove_worker(self, uid: str) -> list[str]:
        """Forget a dead worker; returns the uids of the tasks it had (they are lost)."""
        worker = self.workers.pop(uid)
        self._open.remove(worker)
        worker.buckets = None
        node = self.nodes[worker.node]
        node.workers.remove(uid)
        self._node_changed(node, lost_workers=1)
        self.changed_nodes.add(node.name)
        lost = list(worker.queue)
        for task_uid in lost:
            self.finished(task_uid)
        if worker.held_by and worker.held_by not in self._placements:
            self._release_reservation(worker.held_by)  # a reservation that can no longer be met is made again
        return lost

    def expect_worker(self, node: str) -> None:
        """One more worker was started on ``node`` (a replacement)."""
        self._node_changed(self.nodes[node], expected_workers=1)

    def worker_never_came(self, node: str) -> None:
        """A worker started on ``node`` ended before it said hello."""
        self._node_changed(self.nodes[node], lost_workers=1)

    def close_node(self, node: str) -> list[str]:
        """Take ``node`` out of the schedule; returns its workers (to be removed: :meth:`remove_worker`)."""
        self._node_changed(self.nodes[node], closed=True)
        self.changed_nodes.add(node)
        return list(self.nodes[node].workers)

    @property
    def capacity(self) -> int:
        """Workers this pilot has or will have (see :attr:`NodeSlots.worker_capacity`)."""
        return self._capacity

    def _release_reservation(self, uid: str) -> None:
        """Return the workers reserved (not yet used) by the placed task ``uid``."""
        if uid in self._placements:
            return
        for worker in self._reservations.pop(uid, ()):
            if worker.held_by == uid:
                worker.held_by = None

    # -- needs ---------------------------------------------------------------------------------------
    def workers_needed(self, task: dict[str, Any]) -> int:
        return math.ceil(int(task["cores"]) * int(task["ranks"]) / self.width)

    def unsatisfiable_reason(self, task: dict[str, Any]) -> str | None:
        """Why the workers of this pilot (started, minus lost) can never run ``task`` (None if they can)."""
        if self._satisfiable(task):
            return None
        ranks, nodes = task["ranks"], list(self.nodes.values())
        cores, gpus = task["cores"] * ranks, task["gpus"] * ranks
        largest = max(nodes, key=lambda node: (node.worker_capacity, node.total_gpus), default=None)
        offer = (f"{largest.worker_capacity * self.width} cores and {largest.total_gpus} GPUs"
                 if largest else "nothing")
        where = "on one node" if ranks == 1 else f"for {ranks} ranks across {len(nodes)} node(s)"
        reason = f"needs {cores} cores and {gpus} GPUs {where}; the largest node of this pilot offers {offer}"
        if ranks > 1:
            total_cores = sum(node.worker_capacity for node in nodes) * self.width
            total_gpus = sum(node.total_gpus for node in nodes)
            reason += f", its {len(nodes)} node(s) together {total_cores} cores and {total_gpus} GPUs"
        lost = sum(node.lost_workers for node in nodes)
        closed = [node.name for node in nodes if node.closed]
        if closed:
            named = ", ".join(closed[:NAMED_NODES]) + (f" and {len(closed) - NAMED_NODES} more"
                                                       if len(closed) > NAMED_NODES else "")
            reason += f" ({len(closed)} of its {len(nodes)} node(s) out of the schedule: {named})"
        return reason + (f" ({lost} of its workers were lost)" if lost and not closed else "")

    def _satisfiable(self, task: dict[str, Any]) -> bool:
        nodes = self.nodes.values()
        if self._is_simple(task):
            return self._capacity > 0
        if any(self._ranks_fitting(node, task, node.worker_capacity, node.total_gpus) >= task["ranks"]
               for node in nodes):
            return True
        return int(task["ranks"]) > 1 and sum(
            self._ranks_fitting(node, task, node.worker_capacity, node.total_gpus) for node in nodes
        ) >= task["ranks"]

    def _is_simple(self, task: dict[str, Any]) -> bool:
        """One worker and no GPU: pipelined, no placement."""
        return task["gpus"] == 0 and 0 < int(task["cores"]) * int(task["ranks"]) <= self.width

    def _ranks_fitting(self, node: NodeSlots, task: dict[str, Any], workers: int, gpus: int) -> int:
        """How many ranks of ``task`` fit in ``workers`` workers and ``gpus`` GPUs of ``node``."""
        per_rank = math.ceil(int(task["cores"]) / self.width)
        fit = workers // per_rank
        return min(fit, gpus // int(task["gpus"])) if task["gpus"] else fit

    # -- queueing ------------------------------------------------------------------------------------
    def submit(self, tasks: Iterable[dict[str, Any]]) -> None:
        for task in tasks:
            self._pending_uids.add(task["uid"])
            if self._is_simple(task):
                self._simple.append(task)
            else:
                self._placed.append(task)

    def requeue(self, tasks: list[dict[str, Any]]) -> None:
        """Put tasks back at the head of their queues, in the given order (a dead worker had them queued)."""
        for task in reversed(tasks):
            self._pending_uids.add(task["uid"])
            (self._simple if self._is_simple(task) else self._placed).appendleft(task)

    @property
    def pending_count(self) -> int:
        return len(self._pending_uids)

    def cancel(self, uid: str) -> str | None:
        """Cancel a task: returns ``"pending"`` if it was dropped here, the worker uid if one has it, else None."""
        if uid in self._pending_uids:
            self._pending_uids.discard(uid)
            self._canceled.add(uid)
            self._release_reservation(uid)
            return "pending"
        return self._worker_of.get(uid)

    def drain_pending(self) -> list[dict[str, Any]]:
        """Remove and return every task not yet given to a worker (their reservations are returned)."""
        tasks = [task for task in (*self._placed, *self._simple) if task["uid"] in self._pending_uids]
        for task in tasks:
            self._release_reservation(task["uid"])
        self._placed.clear()
        self._simple.clear()
        self._pending_uids.clear()
        self._canceled.clear()
        return tasks

    def take_rejected(self) -> list[tuple[dict[str, Any], str]]:
        """Remove and return the tasks found unsatisfiable while scheduling (workers were lost), with why."""
        rejected, self._rejected = self._rejected, []
        return rejected

    def observe_duration(self, seconds: float) -> None:
        """Feed the duration of a finished task (adapts the pipelining depth)."""
        mean = self._mean_duration
        self._mean_duration = seconds if mean is None else 0.9 * mean + 0.1 * seconds

    @property
    def mean_duration(self) -> float | None:
        """The moving mean of the task durations seen (None before the first)."""
        return self._mean_duration

    @property
    def depth(self) -> int:
        if self._mean_duration is None:
            return self._initial_depth
        return max(1, min(self._max_depth, int(self._target / max(self._mean_duration, 1e-6)) + 1))

    # -- decisions ----------------------------------------------------------------------------------
    def schedule(self) -> dict[str, list[dict[str, Any]]]:
        """Assign what can start now; returns worker uid → tasks to send it (placed tasks with ``gpu_ids`` set; a
        task without it has no GPU)."""
        assignments: dict[str, list[dict[str, Any]]] = {}
        self._schedule_placed(assignments)
        self._schedule_simple(assignments)
        return assignments

    def _pop_live(self, queue: collections.deque[dict[str, Any]]) -> dict[str, Any] | None:
        while queue:
            task = queue[0]
            if task["uid"] in self._canceled:
                queue.popleft()
                self._canceled.discard(task["uid"])
                continue
            return task
        return None

    def _schedule_placed(self, assignments: dict[str, list[dict[str, Any]]]) -> None:
        while (task := self._pop_live(self._placed)) is not None:
            placement = self._try_place(task)
            if placement is None:
                reason = self.unsatisfiable_reason(task)
                if reason is None:
                    self._reserve(task)
                    return
                self._reject(self._placed, reason)
                continue
            self._placed.popleft()
            self._pending_uids.discard(task["uid"])
            assignments.setdefault(placement.worker, []).append(task)

    def _reject(self, queue: collections.deque[dict[str, Any]], reason: str) -> None:
        """Drop the head of ``queue``: it can never run here."""
        task = queue.popleft()
        self._pending_uids.discard(task["uid"])
        self._release_reservation(task["uid"])
        self._rejected.append((task, reason))

    def _idle_workers(self, node: NodeSlots, uid: str) -> list[str]:
        return [w for w in node.workers if not self.workers[w].queue and self.workers[w].held_by in (None, uid)]

    def _try_place(self, task: dict[str, Any]) -> Placement | None:
        """Place ``task`` now if enough workers are idle: on one node, else rank by rank across nodes."""
        uid, ranks = task["uid"], task["ranks"]
        per_rank = math.ceil(task["cores"] / self.width)
        plan: list[tuple[NodeSlots, int]] = []
        for node in self.nodes.values():
            if self._ranks_fitting(node, task, len(self._idle_workers(node, uid)), len(node.free_gpus)) >= ranks:
                plan = [(node, ranks)]
                break
        else:
            if ranks == 1:
                return None
            left = ranks
            for node in self.nodes.values():
                fit = min(left, self._ranks_fitting(node, task, len(self._idle_workers(node, uid)),
                                                    len(node.free_gpus)))
                if fit:
                    plan.append((node, fit))
                    left -= fit
            if left:
                return None
        chosen: list[str] = []
        gpu_ids: dict[str, list[int]] = {}
        for node, node_ranks in plan:
            chosen += self._idle_workers(node, uid)[: per_rank * node_ranks]
            taken = task["gpus"] * node_ranks
            gpu_ids[node.name], node.free_gpus = node.free_gpus[:taken], node.free_gpus[taken:]
        for worker_uid in chosen:
            self.workers[worker_uid].held_by = uid
        for worker in self._reservations.pop(uid, ()):  # release reservations beyond what was used
            if worker.held_by == uid and worker.uid not in chosen:
                worker.held_by = None
        self.workers[chosen[0]].queue += (uid,)  # (held: in no bucket of open workers)
        placement = Placement(task, chosen[0], chosen, gpu_ids)
        self._placements[uid] = placement
        self._worker_of[uid] = chosen[0]
        task["placement"] = [[node.name, node_ranks] for node, node_ranks in plan]
        task["gpu_ids"] = gpu_ids[plan[0][0].name] if len(plan) == 1 else []
        return placement

    def _reserve(self, task: dict[str, Any]) -> None:
        """Hold workers for ``task`` so that they drain: the idlest node if it fits there, else across nodes."""
        uid = task["uid"]
        if uid in self._reservations:
            return
        per_rank = math.ceil(task["cores"] / self.width)
        needed = per_rank * task["ranks"]

        def free(node: NodeSlots) -> list[str]:
            return [w for w in node.workers if self.workers[w].held_by is None]

        def idleness(node: NodeSlots) -> int:
            return sum(1 for w in free(node) if not self.workers[w].queue)

        nodes = sorted(self.nodes.values(), key=idleness, reverse=True)
        whole = [n for n in nodes if self._ranks_fitting(n, task, len(n.workers), n.total_gpus) >= task["ranks"]]
        reserved: list[WorkerSlots] = []
        for node in whole[:1] or nodes:
            take = self._ranks_fitting(node, task, len(free(node)), node.total_gpus) * per_rank
            for worker_uid in free(node)[: min(take, needed)]:
                reserved.append(self.workers[worker_uid])
                reserved[-1].held_by = uid
                needed -= 1
            if needed <= 0:
                break
        if reserved:  # (none: tried again on the next pass)
            self._reservations[uid] = reserved

    def _schedule_simple(self, assignments: dict[str, list[dict[str, Any]]]) -> None:
        if not self._capacity:  # every worker was lost
            while (task := self._pop_live(self._simple)) is not None:
                self._reject(self._simple, self.unsatisfiable_reason(task) or "no worker left")
            return
        # no pipelining while workers are still starting: what a worker queues stays with it, and the others
        # would find nothing left when they say hello
        depth = 1 if self._starting else self.depth
        # the least loaded first: a task that arrives alone goes to an idle worker, not behind another's task
        while (task := self._pop_live(self._simple)) is not None:
            worker = self._open.least_loaded(below=depth)
            if worker is None:
                return
            self._simple.popleft()
            self._pending_uids.discard(task["uid"])  # (no "gpu_ids" key: it has none; an 11th key made each
            worker.queue += (task["uid"],)            # task's dict 464 bytes instead of 272, and a list 56 more)
            worker.moved()
            self._worker_of[task["uid"]] = worker.uid
            assignments.setdefault(worker.uid, []).append(task)

    def give_back(self, worker_uid: str, uids: list[str]) -> list[str]:
        """``worker_uid`` gave back ``uids``, queued behind its current task (which runs long) and not started:
        returns those it had (to queue again: :meth:`requeue`); it gets nothing more until it is idle."""
        worker = self.workers.get(worker_uid)
        if worker is None:
            return []
        taken = [uid for uid in uids if self._worker_of.get(uid) == worker_uid and uid not in self._placements]
        for uid in taken:
            del self._worker_of[uid]
            worker.queue = without(worker.queue, uid)
        worker.busy_long = bool(worker.queue)  # (moves it)
        return taken

    def finished(self, uid: str) -> None:
        """A task given to a worker has ended (any final state, or returned for a retry)."""
        worker_uid = self._worker_of.pop(uid, None)
        if worker_uid is None:
            return
        worker = self.workers.get(worker_uid)
        if worker is not None:
            worker.queue = without(worker.queue, uid)
            if worker.busy_long and not worker.queue:
                worker.busy_long = False  # (moves it)
            else:
                worker.moved()
        placement = self._placements.pop(uid, None)
        if placement is not None:
            for held in placement.held_workers:
                if held in self.workers and self.workers[held].held_by == uid:
                    self.workers[held].held_by = None
            for node, ids in placement.gpu_ids.items():
                self.nodes[node].free_gpus.extend(ids)
