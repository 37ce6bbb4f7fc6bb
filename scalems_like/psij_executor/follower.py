"""Jobs of a session that a live client in another process holds, followed read-only from its journal.

An agent serves one client, so a session that a live client holds cannot be reattached elsewhere
(:mod:`scalems_like.record.client_lock`). Its jobs can still be followed: the owner commits every task update to
the session's journal (SQLite, WAL) within a fraction of a second. A :class:`SessionFollower` reads it through a
read-only connection (:meth:`~scalems_like.record.journal.Journal.open_read_only`: no write lock, and never the
client lock), one short query per look, and replays the updates of the tasks it follows through ``Task._apply``
— the code that applied them in the owner — so a job's states, exit code and message are the owner's.

- Looks back off from :data:`POLL_FIRST` to :data:`POLL_LAST` seconds while nothing changes, and come back to
  :data:`POLL_FIRST` after a change; the thread ends when every followed task has.
- The owner lets the session go (detached, or its process ended) before a followed task ended: ``released`` is
  asked to take the session over (reattach it and follow its jobs live); if another client was quicker, the
  follower goes on reading the journal, which that client now writes.
- A closed session's tasks have ended (its close cancels them); one its journal left unfinished (its client died
  while closing) ends CANCELED here.
- A followed job cannot be canceled from here: only the owner reaches the agents (see :meth:`cancel_tasks`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import cast

from scalems_like.client.restore import description_from_wire
from scalems_like.client.task import Task
from scalems_like.errors import ScalemsError, WaitTimeout
from scalems_like.protocol.tasks import CLIENT_HOST, JournaledUpdate, task_update
from scalems_like.record.client_lock import LOCK_FILE, describe_holder
from scalems_like.record.journal import Journal, journal_path
from scalems_like.record.summary import journal_state
from scalems_like.states import TaskState

log = logging.getLogger("scalems_like.psij")

POLL_FIRST = 0.05
"""Seconds between looks at the journal just after a change (the owner commits a batch about this often)."""
POLL_LAST = 1.0
"""Seconds between looks at most, while nothing changes (doubling from :data:`POLL_FIRST`)."""
UNSEEN = -1
"""``seq`` before the first look."""


class SessionFollower:
    """The followed tasks of session ``uid`` (held by a client elsewhere), updated by one thread while any is
    unfinished. Stands in for their Session (``Task.wait``, ``Task.cancel``). ``released(follower)`` is called
    on that thread when the owner lets the session go: True if it took the session over (following stops)."""

    def __init__(self, uid: str, released: Callable[[SessionFollower], bool]) -> None:
        """No I/O: the journal is opened by the first :meth:`follow`."""
        self.uid = uid
        self._released = released
        self._journal: Journal | None = None
        self._tasks: dict[str, Task] = {}
        self._seq = UNSEEN
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def tasks(self) -> list[Task]:
        with self._changed:
            return list(self._tasks.values())

    def follow(self, task_uid: str) -> Task | None:
        """Task ``task_uid`` as the journal has it now, followed from now on; None if the journal has no such
        task. Raises FileNotFoundError if the session has no journal."""
        with self._changed:
            if task_uid in self._tasks:
                return self._tasks[task_uid]
            if self._journal is None:
                self._journal = Journal.open_read_only(self.uid)
            wire = self._journal.task(task_uid)
            if wire is None:
                return None
            try:
                description = description_from_wire(wire)
            except Exception as error:  # (a function task whose code cannot be unpickled here)
                raise ScalemsError(f"task {task_uid}: its description cannot be read here: {error}") from error
            task = Task(task_uid, description, self)
            last, rows = self._journal.updates_after(UNSEEN, [task_uid])
            if self._seq == UNSEEN:
                self._seq = last
            for seq, update in rows:  # (those after the others' position come with the next look, for all)
                if seq <= self._seq:
                    task._apply(cast(JournaledUpdate, update))  # (the journal keeps what Engine.apply applied)
            self._tasks[task_uid] = task
            if not task.state.is_final and self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(target=self._run, name=f"psij-follow-{self.uid}", daemon=True)
                self._thread.start()
            return task

    def stop(self) -> None:
        """Stop following (the tasks keep the state they have) and close the journal."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._changed:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    # -- the follower's thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        delay = POLL_FIRST
        while not self._stopped.wait(delay):  # the journal tells no one of a commit: look again, less often
            try:
                changed, state = self._look()
            except (sqlite3.Error, OSError) as error:  # (e.g. the owner's recovery of its journal): look again
                log.warning("session %s: its journal could not be read (%s); trying again", self.uid, error)
                changed, state = False, "open"
            if self._handle_end(state):
                return
            delay = POLL_FIRST if changed else min(delay * 2, POLL_LAST)

    def _look(self) -> tuple[bool, str]:
        """Apply the followed tasks' new updates and run their callbacks; (anything changed, the session's
        state: open, detached, interrupted or closed — as it was before those updates were read)."""
        changes: list[tuple[Task, TaskState]] = []
        with self._changed:
            journal = self._journal
            if journal is None:
                return False, "open"
            state = journal_state(journal.info())  # first: the updates read next include all it was written after
            unfinished = [uid for uid, task in self._tasks.items() if not task.state.is_final]
            self._seq, rows = journal.updates_after(self._seq, unfinished)
            for _seq, update in rows:
                task = self._tasks[update["uid"]]
                new_state = task._apply(cast(JournaledUpdate, update))
                if new_state is not None:
                    changes.append((task, new_state))
            self._changed.notify_all()
        run_callbacks(changes)
        return bool(changes), state

    def _handle_end(self, state: str) -> bool:
        """True when this thread is done: every followed task ended (or was ended here), or the session was
        taken over."""
        with self._changed:
            unfinished = [task for task in self._tasks.values() if not task.state.is_final]
            if not unfinished or self._stopped.is_set():
                self._thread = None
                return True
        if state == "closed":
            self.end(unfinished, TaskState.CANCELED, "the session was closed with no end for this job in its journal")
            return self._handle_end(state)
        if state == "open":
            return False
        try:
            if not self._released(self):
                return False
        except Exception as error:  # (the thread must not end with jobs that would never end)
            log.exception("session %s: its client let it go, and it could not be taken over", self.uid)
            self.end(unfinished, TaskState.FAILED, f"its session's client let it go, and it could not be taken "
                                                   f"over here: {type(error).__name__}: {error}")
            return self._handle_end(state)
        with self._changed:
            self._thread = None
        return True

    def end(self, tasks: list[Task], state: TaskState, reason: str) -> None:
        """End followed ``tasks`` here, where the journal will not (callbacks run as for the journal's updates)."""
        changes: list[tuple[Task, TaskState]] = []
        with self._changed:
            for task in tasks:
                if task._apply(task_update(task.uid, state, time.time(), CLIENT_HOST, reason=reason)) is not None:
                    changes.append((task, state))
            self._changed.notify_all()
        run_callbacks(changes)

    # -- what a Task asks of its session -------------------------------------------------------------------
    def wait_tasks(self, tasks: Sequence[Task] | None = None, timeout: float | None = None) -> list[Task]:
        """Block until the tasks (default: all followed) are final; WaitTimeout if ``timeout`` passes first."""
        waited = list(self.tasks if tasks is None else tasks)
        with self._changed:
            if not self._changed.wait_for(lambda: all(task.state.is_final for task in waited), timeout):
                left = [task for task in waited if not task.state.is_final]
                raise WaitTimeout(f"timed out after {timeout} s: {len(left)} task(s) not final, e.g. {left[:3]}")
        return waited

    def cancel_tasks(self, tasks: Sequence[Task]) -> None:
        """Refused: a cancel reaches a task's agent only through the client that holds the session."""
        holder = describe_holder(journal_path(self.uid).parent / LOCK_FILE)
        raise ScalemsError(
            f"session {self.uid} is held by {holder}: its jobs are followed here read-only, from its journal, and "
            f"only that process can cancel them (executor.cancel(job) there); `scalems-like cancel {self.uid}` "
            "would end the whole session")


def run_callbacks(changes: list[tuple[Task, TaskState]]) -> None:
    """The tasks' state callbacks, in order (as the owner's I/O thread runs them: one that raises is logged)."""
    for task, state in changes:
        for callback in list(task._callbacks):
            try:
                callback(task, state)
            except Exception:
                log.exception("a state callback raised")
