"""How the engine changes tasks: every update, reported by an agent or decided on the client, goes through
:meth:`TaskUpdates.apply` — applied to the task as a journal replay applies it (``Task._apply``), queued for the
journal, its callbacks queued to run at the end of the loop's pass. Part of the
:class:`~scalems_like.client.engine.Engine`; everything here runs on its I/O thread.

An end that the journal has committed is acknowledged to its agent, which may then forget it (its credit returns).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from scalems_like import protocol
from scalems_like.client.remote_staging import fetch
from scalems_like.client.task import Task, result_file_notice
from scalems_like.protocol.tasks import JournaledUpdate
from scalems_like.record.journal import Journal
from scalems_like.states import TASK_FINAL, PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.gateway_link import GatewayLink
    from scalems_like.client.pilot import Pilot
    from scalems_like.client.pilot_lifecycle import PilotRecord
    from scalems_like.staging.directives import Directive

log = logging.getLogger("scalems_like.client")



class TaskUpdates:
    """The task-changing half of the engine (see the module); the engine owns the state named below."""

    lock: threading.RLock
    changed: threading.Condition
    tasks: dict[str, Task]
    pilots: dict[str, Pilot]
    records: dict[str, PilotRecord]
    pending: deque[Task]
    wire: dict[str, dict[str, Any]]
    journal: Journal | None
    journal_batch: list[dict[str, Any]]
    callbacks: list[Callable[[], None]]
    hold_pending: bool
    told_of_result_files: bool
    remote_outputs: dict[str, tuple[GatewayLink, list[Directive], Path]]

    if TYPE_CHECKING:  # (the engine's: its I/O thread's mailbox, its socket)
        def post(self, command: Callable[[], None]) -> bool: ...

        def in_background(self, function: Callable[[], Any], then: Callable[[Any], None] | None = None,
                          failed: Callable[[Exception], None] | None = None) -> None: ...

        def send(self, record: PilotRecord, data: bytes) -> None: ...

    def on_journal_commit(self, updates: list[dict[str, Any]]) -> None:
        """(Journal thread) final results are durable: their tasks compact, their agents may forget them."""
        ends = [update for update in updates if update["state"] in TASK_FINAL]
        if ends:
            self.post(lambda: self.journaled(ends))

    def journaled(self, ends: list[dict[str, Any]]) -> None:
        """(I/O thread) tasks whose final update is committed keep only what is cheap (the rest is read back from
        the journal: see ``Task._compact``); agents forget the tasks they ended."""
        assert self.journal is not None
        reader = self.journal.reader
        for update in ends:
            task = self.tasks.get(update["uid"])
            if task is not None:
                task._compact_if_ended_by(update, reader)
        uids = [update["uid"] for update in ends if update.get("host") != "client"]
        if uids:
            self.acknowledge(uids)

    def acknowledge(self, uids: list[str]) -> None:
        by_pilot: dict[str, list[str]] = {}
        for uid in uids:
            task = self.tasks.get(uid)
            if task is not None and task.pilot is not None:
                by_pilot.setdefault(task.pilot, []).append(uid)
        for pilot_uid, pilot_uids in by_pilot.items():
            record = self.records.get(pilot_uid)
            if record is None:
                continue
            record.unacknowledged.difference_update(pilot_uids)
            if record.pilot.state is PilotState.ACTIVE:
                self.send(record, protocol.encode(protocol.Acknowledge(pilot_uids)))

    def apply_updates(self, record: PilotRecord, updates: list[dict[str, Any]]) -> None:
        if self.remote_outputs:
            updates = self.hold_for_outputs(record, updates)
        ended = []
        with self.lock:
            for update in updates:
                task = self.tasks.get(update.get("uid")) if isinstance(update, dict) else None  # type: ignore[arg-type]
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

    def hold_for_outputs(self, record: PilotRecord, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The updates to apply now: the ends of tasks with client:// outputs wait while those come over ssh, the
        outputs of the tasks that ended together in one transfer (then they are applied; FAILED with why if the
        outputs could not be fetched)."""
        now = []
        held: dict[tuple[GatewayLink, Path], list[tuple[dict[str, Any], list[Directive]]]] = {}
        for update in updates:
            uid = update.get("uid") if isinstance(update, dict) else None
            fetching = self.remote_outputs.get(uid) if isinstance(uid, str) else None
            if fetching is None or not TaskState(update["state"]).is_final:
                now.append(update)
                continue
            del self.remote_outputs[str(uid)]
            link, directives, client_root = fetching
            held.setdefault((link, client_root), []).append((update, directives))
        for (link, client_root), ends in held.items():
            ended = [update for update, _ in ends]

            def fetched(_: object, ended: list[dict[str, Any]] = ended) -> None:
                self.apply_updates(record, ended)

            def failed(error: Exception, ended: list[dict[str, Any]] = ended) -> None:
                reason = f"its outputs could not be fetched to the client: {error}"
                self.apply_updates(record, [{**update, "state": TaskState.FAILED.value, "reason": reason}
                                            for update in ended])
            directives = [directive for _, some in ends for directive in some]
            self.in_background(functools.partial(fetch, link, directives, client_root), fetched, failed)
        return now

    def fail_pending_without_pilots(self, why: str) -> None:
        """Tasks waiting on the client fail when no pilot that could run them is left."""
        if not self.pending or not self.pilots or self.hold_pending:
            return  # (no pilot yet: tasks wait for the first one)
        if any(not r.pilot.state.is_final and not r.ending for r in self.records.values()):
            return
        uids = [task.uid for task in self.pending]
        self.pending.clear()
        self.end_tasks(uids, TaskState.FAILED, f"no live pilot to run it: {why}")

    def end_tasks(self, uids: list[str], state: TaskState, reason: str) -> None:
        now = time.time()
        with self.lock:
            for uid in uids:
                if self.transition(self.tasks[uid], state, now, reason):
                    self.wire.pop(uid, None)
            self.changed.notify_all()

    def interrupt_tasks(self, uids: list[str], reason: str) -> None:
        """Tasks whose pilot ended under them: FAILED, marked so that ``Session.resume`` can run them again."""
        now = time.time()
        with self.lock:
            for uid in uids:
                task = self.tasks[uid]
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

    def apply(self, task: Task, update: dict[str, Any] | JournaledUpdate) -> TaskState | None:
        """Apply one update, from an agent or decided here, as a journal replay applies it (``Task._apply``);
        journal it and queue the task's callbacks. Returns the new state, or None if the update was stale."""
        state = task._apply(cast(JournaledUpdate, update))
        if state is not None:
            self.journal_batch.append(cast(dict[str, Any], update))
            self.queue_callbacks(task, state)
        return state

    def queue_callbacks(self, task: Task, state: TaskState) -> None:
        if task._callbacks:
            self.callbacks.extend(functools.partial(callback, task, state) for callback in task._callbacks)

    def run_callbacks(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a state callback raised")
