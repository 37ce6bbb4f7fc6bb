"""What the scheduler keeps per node and per worker, small enough for 4 096 nodes of 128 workers. Pure, no I/O.

:class:`OpenWorkers` keeps the workers that may take simple tasks in buckets by the length of their queue, each
bucket a ring linked through the workers themselves (:attr:`WorkerSlots.before` / :attr:`WorkerSlots.after`):
adding, removing and taking the least loaded worker cost the same whatever the number of workers, and a worker
costs two references more. In a bucket, workers are taken in the order they entered it (round robin).
"""

from __future__ import annotations

import dataclasses
from typing import Any


class WorkerSlots:
    """One worker as the scheduler sees it. Setting ``held_by`` or ``busy_long`` moves it to the bucket of
    :class:`OpenWorkers` it belongs to; whoever changes its ``queue`` calls :meth:`moved`."""

    __slots__ = ("_busy_long", "_held_by", "after", "before", "buckets", "manager", "node", "queue", "uid")

    def __init__(self, uid: str, node: str, buckets: OpenWorkers | None = None, manager: str = "") -> None:
        self.uid = uid
        self.node = node
        self.manager = manager
        """Who its messages go through (its node manager's uid: one string for all its workers; a slot, not a dict
        entry per worker)."""
        self.queue: tuple[str, ...] = ()
        """The uids of the tasks given to it and not ended, in the order given: a tuple, replaced on each change
        (empty, the one shared ``()``: an idle worker holds no queue of its own; a list was 56 bytes each, 28 MB at
        524 288 workers; a deque 624)."""
        self._held_by: str | None = None
        self._busy_long = False
        self.buckets = buckets
        """The buckets it is kept in while it is open (None: none, or it was removed)."""
        self.before = self.after = self
        """Its neighbours in its bucket (itself when it is in none)."""
        if buckets is not None:
            buckets.add(self)

    def __repr__(self) -> str:
        return (f"WorkerSlots({self.uid!r}, node={self.node!r}, queue={self.queue!r}, held_by={self._held_by!r}, "
                f"busy_long={self._busy_long!r})")

    @property
    def held_by(self) -> str | None:
        """Uid of the placed task that reserved or holds this worker."""
        return self._held_by

    @held_by.setter
    def held_by(self, uid: str | None) -> None:
        self._held_by = uid
        self.moved()

    @property
    def busy_long(self) -> bool:
        """It gave back its queued tasks (its current task runs long): nothing is queued to it until it is idle."""
        return self._busy_long

    @busy_long.setter
    def busy_long(self, value: bool) -> None:
        self._busy_long = value
        self.moved()

    @property
    def open(self) -> bool:
        """It may take simple tasks (queue allowing): no placed task holds it and its current task is not long."""
        return self._held_by is None and not self._busy_long

    def moved(self) -> None:
        """Its queue, reservation or long task changed: into the bucket it belongs to now (or out)."""
        buckets = self.buckets
        if buckets is not None:
            self.before.after = self.after  # (OpenWorkers.remove, inline: this runs twice per task)
            self.after.before = self.before
            self.before = self.after = self
            buckets.add(self)


def without(queue: tuple[str, ...], uid: str) -> tuple[str, ...]:
    """``queue`` without ``uid`` (the same if it is not there)."""
    if queue and queue[0] == uid:  # (the usual case: a worker's tasks end in the order given)
        return queue[1:]
    return tuple(queued for queued in queue if queued != uid)


@dataclasses.dataclass(slots=True)
class NodeSlots:
    name: str
    cores: int
    free_gpus: list[int]
    total_gpus: int
    expected_workers: int
    """Workers the agent started on this node (they may not have said hello yet)."""
    workers: list[str] = dataclasses.field(default_factory=list)
    lost_workers: int = 0
    closed: bool = False
    """Taken out of the schedule (its workers kept dying): no capacity, no new workers."""

    @property
    def starting(self) -> bool:
        """Some workers the agent started here have not said hello yet."""
        return not self.closed and len(self.workers) + self.lost_workers < self.expected_workers

    @property
    def worker_capacity(self) -> int:
        """Workers this node has or will have: those started (or more, if more said hello) minus those lost."""
        if self.closed:
            return 0
        return max(self.expected_workers, len(self.workers) + self.lost_workers) - self.lost_workers


@dataclasses.dataclass(slots=True)
class Placement:
    task: dict[str, Any]
    worker: str
    held_workers: list[str]
    gpu_ids: dict[str, list[int]]
    """node → the GPU ids taken there."""


class OpenWorkers:
    """The open workers (:attr:`WorkerSlots.open`) in buckets by queue length (see the module's docstring)."""

    __slots__ = ("_heads", "_lowest")

    def __init__(self) -> None:
        self._heads: list[WorkerSlots] = []
        """Per queue length, the ring's sentinel (a worker of no node)."""
        self._lowest = 0
        """No bucket below this one holds a worker."""

    def add(self, worker: WorkerSlots) -> None:
        """Put ``worker`` at the end of the bucket of its queue length, if it is open and in no bucket yet."""
        if not worker.open or worker.before is not worker:
            return
        level = len(worker.queue)
        while len(self._heads) <= level:
            self._heads.append(WorkerSlots("", ""))
        head = self._heads[level]
        last = head.before
        worker.before, worker.after = last, head
        last.after = head.before = worker
        self._lowest = min(self._lowest, level)

    @staticmethod
    def remove(worker: WorkerSlots) -> None:
        """Take ``worker`` out of its bucket (nothing if it is in none)."""
        worker.before.after = worker.after
        worker.after.before = worker.before
        worker.before = worker.after = worker

    def levels(self) -> dict[str, int]:
        """Worker uid → the bucket (queue length) it is in: every worker in the buckets, walked (for checks)."""
        found: dict[str, int] = {}
        for level, head in enumerate(self._heads):
            worker = head.after
            while worker is not head:
                found[worker.uid] = level
                worker = worker.after
        return found

    def least_loaded(self, below: int) -> WorkerSlots | None:
        """The first worker of the lowest non-empty bucket, if its queue is shorter than ``below`` (left in place).

        A worker whose queue changed without :meth:`WorkerSlots.moved` is put where it belongs on the way."""
        heads = self._heads
        while True:
            level = self._lowest
            while level < len(heads) and heads[level].after is heads[level]:
                level += 1
            self._lowest = level
            if level >= min(below, len(heads)):
                return None
            worker = heads[level].after
            if worker.open and len(worker.queue) == level:
                return worker
            self.remove(worker)
            self.add(worker)
