"""The client's handle of one task: its state, history and results, updated by the session's I/O thread.

A :class:`Task` is also a :class:`concurrent.futures.Future` (``concurrent.futures.wait``/``as_completed``,
``add_done_callback``, ``done()``, ``exception()``) and an awaitable (``await task`` in asyncio): the future settles
when the task reaches a final state — with its result when DONE, with the function's exception (or
:class:`TaskFailed`) when FAILED, cancelled when CANCELED. Done-callbacks run on the session's I/O thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import cloudpickle

from scalems_like.descriptions import TaskDescription
from scalems_like.errors import RemoteError, ResultFileError, ScalemsError, TaskFailed, TaskWasCanceled
from scalems_like.protocol.tasks import CLIENT_HOST, JournaledUpdate, ResultFile, task_update
from scalems_like.staging.actions import checksum_of
from scalems_like.states import TaskState, task_transition_allowed

if TYPE_CHECKING:
    from scalems_like.record.journal import JournalReader


class TaskOwner(Protocol):
    """What a task asks of its session: a :class:`~scalems_like.client.session.Session`, or the follower of a
    session another client holds (:mod:`scalems_like.psij_executor.follower`)."""

    def wait_tasks(self, tasks: Sequence[Task] | None = None, timeout: float | None = None) -> list[Task]: ...

    def cancel_tasks(self, tasks: Sequence[Task]) -> None: ...


MAX_OUTPUT_BYTES = 1024 * 1024
"""How much of an executable's stdout/stderr file ``Task.stdout``/``Task.stderr`` read (the file keeps it all)."""

_NONE: tuple[()] = ()
_CREATED = (TaskState.NEW, 0.0, CLIENT_HOST)
"""Every task's first history entry (one tuple for all)."""
_FUTURES_CONDITION = threading.Condition()
"""The lock of every task's future (``concurrent.futures`` takes it around a task's future state): one for all,
not a Condition (with its lock and wait queue, ~1.4 KB) per task. Nothing waits on it: ``Task.result()`` and
``exception()`` wait through the session, ``concurrent.futures.wait`` and asyncio through waiters and callbacks."""


class TaskDetails:
    """What a task's updates brought besides its state: its history, sandbox and results. A live task holds one;
    a compacted task (final, and its end committed to the session's journal) holds none, and each read of these
    replays the task's updates from the journal into a new one (:meth:`Task._details_now`)."""

    __slots__ = ("exception_pickle", "history", "output", "return_file", "return_value", "sandbox", "traceback")

    def __init__(self) -> None:
        self.history: list[tuple[TaskState, float, str]] = [_CREATED]
        self.sandbox: str | None = None
        self.traceback: str | None = None
        self.return_value: bytes | None = None
        self.return_file: ResultFile | None = None
        """A return value kept in the task sandbox: its file's ``name``, ``bytes`` and ``sha256``."""
        self.exception_pickle: bytes | None = None
        self.output: str | None = None

    def take(self, update: JournaledUpdate) -> None:
        """The fields of one applied update (its state is in the history already)."""
        if "return_value" in update:
            self.return_value = update["return_value"]
        if "return_value_file" in update:
            self.return_file = update["return_value_file"]
        if "exception" in update:
            self.exception_pickle = update["exception"]
        if "traceback" in update:
            self.traceback = update["traceback"]
        if "output" in update:
            self.output = update["output"]
        if "pilot" in update:  # client-side updates only: where the task was sent
            self.sandbox = update.get("sandbox") or None


class Task(concurrent.futures.Future[Any]):
    """A submitted task, and a future of its result. Read-only for users; the session updates it as messages
    arrive."""

    def __init__(self, uid: str, description: TaskDescription | None, session: TaskOwner) -> None:
        # concurrent.futures.Future's own fields (its __init__ would make a Condition per task)
        self._condition = _FUTURES_CONDITION
        self._state = "PENDING"
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Callable[[concurrent.futures.Future[Any]], object]] = []
        self.uid = uid
        self._description = description
        self._name = description.name if description is not None else None
        self._runs_function = description is not None and description.function is not None
        self._session = session
        self.state = TaskState.NEW
        self.reason: str | None = None
        """Why the task is FAILED or CANCELED (or why it was retried)."""
        self.exit_code: int | None = None
        self.pilot: str | None = None
        self.attempt = 0
        self.interrupted: str | None = None
        """"queued" or "running" when the task FAILED because its pilot ended (``Session.resume`` runs it again)."""
        self._details: TaskDetails | None = TaskDetails()
        self._archive: JournalReader | None = None
        """Where a compacted task's description and updates are read from (None: not compacted)."""
        self._callbacks: list[Callable[[Task, TaskState], None]] | tuple[()] = ()

    def __repr__(self) -> str:
        return f"<Task {self.uid} {self.state.value}>"

    @property
    def name(self) -> str:
        return self._name or self.uid

    @property
    def description(self) -> TaskDescription:
        """What was submitted (a compacted task reads it back from the session's journal on each access)."""
        if self._description is not None:
            return self._description
        from scalems_like.client.restore import description_from_wire

        journal = self._journal()
        wire = journal.task(self.uid)
        if wire is None:
            raise ScalemsError(f"task {self.uid}: the session's journal {journal.path} has no description of it")
        return description_from_wire(wire)

    @property
    def history(self) -> list[tuple[TaskState, float, str]]:
        """(state, time, host) of every state change, stamped where it happened."""
        return self._details_now().history

    @property
    def sandbox(self) -> Path | None:
        """The task's sandbox on its pilot (None until sent to one)."""
        sandbox = self._details_now().sandbox
        return None if sandbox is None else Path(sandbox)

    @property
    def traceback(self) -> str | None:
        """The remote traceback of a function task that raised, as text."""
        return self._details_now().traceback

    # -- compaction: a final task keeps what is cheap, and reads the rest from the session's journal ------
    def _compact(self, archive: JournalReader) -> None:
        """(I/O thread) drop the description and the details: the task is final, and its updates are committed
        to the journal ``archive`` reads."""
        self._archive = archive
        self._details = None
        self._description = None
        self._done_callbacks = _NONE  # type: ignore[assignment]  # (called when the future settled; later ones
        # are called at once, never kept: concurrent.futures appends only to a pending future's)

    def _compact_if_ended_by(self, update: dict[str, Any], archive: JournalReader) -> None:
        """(I/O thread) compact, if ``update`` (committed to the journal) is still the end the task has (it may
        have run again and ended since: ``Session.resume``)."""
        details = self._details
        if details is not None and self.state.value == update["state"] \
                and details.history[-1][1] == float(update.get("time", 0.0)):
            self._compact(archive)

    def _journal(self) -> JournalReader:
        assert self._archive is not None  # (compacted: asked only then)
        return self._archive

    def _details_now(self) -> TaskDetails:
        """The task's details: those it holds, or (compacted) its updates replayed from the journal."""
        details = self._details
        if details is not None:
            return details
        replayed = Task(self.uid, None, self._session)
        for update in self._journal().task_updates(self.uid):
            replayed._apply(cast(JournaledUpdate, update))
        assert replayed._details is not None
        return replayed._details

    def _expand(self) -> TaskDetails:
        """(I/O thread) a compacted task that changes again (``Session.resume``) holds its record again."""
        details = self._details
        if details is None:
            details = self._details = self._details_now()
            self._done_callbacks = []
            self._description = self.description
            self._archive = None
        return details

    def _return_pickle(self) -> bytes | None:
        """The return value's pickle, when it came back with the task's update."""
        return self._details_now().return_value

    def done(self) -> bool:
        """True when the task is in a final state (DONE, FAILED or CANCELED)."""
        return self.state.is_final

    def running(self) -> bool:
        return self.state is TaskState.RUNNING

    def __await__(self) -> Generator[Any, None, Any]:
        """``await task``: its result (raises as :meth:`result` does)."""
        return asyncio.wrap_future(self).__await__()

    @property
    def stdout(self) -> str | None:
        """The task's standard output: the file in its sandbox (its first :data:`MAX_OUTPUT_BYTES`, then a line
        saying how much more the file holds), or a function's printed output (as much, cut by the worker)."""
        if self._runs_function:
            return self._details_now().output
        return self._read_output("stdout")

    @property
    def stderr(self) -> str | None:
        return None if self._runs_function else self._read_output("stderr")

    def _read_output(self, stream: str) -> str | None:
        sandbox = self.sandbox
        if sandbox is None:
            return None
        path = sandbox / getattr(self.description, stream)
        remote = getattr(self._session, "_remote_head", None)  # a pilot behind ssh: read there
        found = remote(self, path, MAX_OUTPUT_BYTES) if remote is not None else None
        if found is not None:
            head, size = found
        else:
            try:
                with open(path, "rb") as handle:
                    head = handle.read(MAX_OUTPUT_BYTES)
                    size = os.fstat(handle.fileno()).st_size
            except OSError:
                return None
        text = head.decode(errors="replace")
        if size > len(head):
            text += f"\n[... {size - len(head)} more bytes: the whole output is {path}]\n"
        return text

    @property
    def return_value(self) -> Any:
        """What the function returned (None until DONE, and for executables). A value larger than the resource's
        ``results_in_sandbox_above`` is read from :attr:`result_file` on each access (this handle keeps none);
        raises :class:`ResultFileError` naming the file if it is gone or not the one the worker wrote."""
        details = self._details_now()
        if details.return_file is not None:
            return self._load_result_file(details)
        return None if details.return_value is None else cloudpickle.loads(details.return_value)

    @property
    def result_file(self) -> Path | None:
        """The file in the task sandbox that holds the return value's pickle, when it was too large to travel
        (None when it came back with the task's update)."""
        return self._result_path(self._details_now())

    @staticmethod
    def _result_path(details: TaskDetails) -> Path | None:
        if details.return_file is None or details.sandbox is None:
            return None
        return Path(details.sandbox) / details.return_file["name"]

    def _load_result_file(self, details: TaskDetails) -> Any:
        reference = details.return_file
        assert reference is not None
        path = self._result_path(details)
        what = f"task {self.uid}: its return value ({reference['bytes']} bytes, kept in its task sandbox)"
        if path is None:
            raise ResultFileError(f"{what} cannot be found: the task's sandbox is unknown", "")
        try:
            with open(path, "rb") as handle:  # checked and loaded through one handle: the file checked is the one read
                size = os.fstat(handle.fileno()).st_size
                if size != reference["bytes"] or checksum_of(handle) != reference["sha256"]:
                    raise ResultFileError(f"{what}: {path} is not the file its worker wrote (its size or SHA-256 "
                                          "differs); it is not loaded", str(path))
                handle.seek(0)
                return cloudpickle.load(handle)
        except FileNotFoundError:
            raise ResultFileError(f"{what}: {path} is gone (was the session's sandbox deleted?)", str(path)) from None
        except OSError as error:
            raise ResultFileError(f"{what}: {path} cannot be read: {error.strerror or error}", str(path)) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait (raises WaitTimeout after ``timeout`` s); then None if DONE, else why not: the exception a function
        task raised (with ``.remote_traceback`` set to the traceback text), or a :class:`TaskFailed`."""
        self.wait(timeout)
        if self.state is TaskState.DONE:
            return None
        if self.state is TaskState.CANCELED:
            return TaskWasCanceled(self.uid, self.state.value, self.reason or "")
        return self._remote_exception() or TaskFailed(self.uid, self.state.value, self.reason or "")


    def _remote_exception(self) -> BaseException | None:
        if self.state is not TaskState.FAILED or not self._runs_function:
            return None
        details = self._details_now()
        if details.traceback is None:
            return None
        error = self._unpickled_exception(details.exception_pickle)
        error.remote_traceback = details.traceback  # type: ignore[attr-defined]
        return error

    def _unpickled_exception(self, pickled: bytes | None) -> BaseException:
        try:
            return cloudpickle.loads(pickled) if pickled else RemoteError(self.reason)
        except Exception:
            return RemoteError(self.reason)

    def wait(self, timeout: float | None = None) -> TaskState:
        """Block until the task is final; returns its state. Raises WaitTimeout if ``timeout`` passes first."""
        self._session.wait_tasks([self], timeout=timeout)
        return self.state

    def result(self, timeout: float | None = None) -> Any:
        """Wait, then return the function's value (or the exit code of an executable); raise if not DONE."""
        self.wait(timeout)
        if self.state is TaskState.DONE:
            return self._value()
        raise self.exception()  # type: ignore[misc]  # not None: the task is not DONE

    def _value(self) -> Any:
        return self.return_value if self._runs_function else self.exit_code

    def cancel(self) -> bool:
        """Ask for the task's end (it ends CANCELED unless it finishes first); False if it already ended."""
        if self.state.is_final:
            return False
        self._session.cancel_tasks([self])
        return True

    def add_callback(self, callback: Callable[[Task, TaskState], None]) -> None:
        """Call ``callback(task, state)`` on every state change (from the session's I/O thread: keep it short)."""
        self._callbacks = [*self._callbacks, callback]

    # -- used by the session's I/O thread ------------------------------------------------------------
    def _apply(self, update: JournaledUpdate) -> TaskState | None:
        """Apply one update (an agent's, or one decided on the client), live or replayed from the journal: the
        one way a task changes state (a ``requeue`` update: back to NEW). Returns the new state, or None if it was
        stale."""
        try:
            state = TaskState(update["state"])
        except (KeyError, ValueError):
            return None
        if update.get("requeue"):
            self._requeue(float(update.get("time", 0.0)), str(update.get("reason", "")))
            self.attempt = update.get("attempt", self.attempt)
            return state
        if not task_transition_allowed(self.state, state):
            return None
        details = self._expand()
        when = float(update.get("time", 0.0))
        if state is TaskState.QUEUED and any(entry[0] is state and entry[1] == when for entry in details.history):
            return None  # not a retry: a QUEUED it had, delivered again (a reattach reads the agent's journal)
        self.state = state
        details.history.append((state, when, sys.intern(str(update.get("host", "?")))))
        self.attempt = update.get("attempt", self.attempt)
        if "reason" in update:
            self.reason = update["reason"]
        if "exit_code" in update:
            self.exit_code = update["exit_code"]
        if "interrupted" in update:
            self.interrupted = update["interrupted"]
        if "pilot" in update:  # client-side updates only: where the task was sent
            self.pilot = sys.intern(update["pilot"]) if update["pilot"] else None
        details.take(update)
        self._settle()
        return state

    def _requeue_update(self, when: float, reason: str, attempt: int) -> JournaledUpdate:
        """The update that sends this task back to NEW, to run on another pilot (``Session.resume``)."""
        return task_update(self.uid, TaskState.NEW, when, CLIENT_HOST, reason=reason, requeue=True, pilot=None,
                           sandbox=None, attempt=attempt)

    def _requeue(self, when: float, reason: str) -> None:
        """Back to NEW (applied by :meth:`_apply` from a ``requeue`` update)."""
        details = self._expand()
        self.state = TaskState.NEW
        details.history.append((TaskState.NEW, when, CLIENT_HOST))
        self.reason, self.pilot, details.sandbox, self.interrupted = reason, None, None, None
        with self._condition:  # the future was settled by the failure: it is pending again
            self._state, self._result, self._exception = "PENDING", None, None

    def _settle(self) -> None:
        """Settle the future once the task is final (waking ``concurrent.futures.wait``, asyncio, callbacks)."""
        if not self.state.is_final or concurrent.futures.Future.done(self):
            return
        # the value itself is read (unpickled) only when asked for: result() and exception() read the task
        if self.state is TaskState.DONE:
            self.set_result(None)
        elif self.state is TaskState.CANCELED:
            concurrent.futures.Future.cancel(self)
            self.set_running_or_notify_cancel()  # tells concurrent.futures.wait/as_completed
        else:
            self.set_exception(TaskFailed(self.uid, self.state.value, self.reason or ""))


def result_file_notice(task: Task) -> str:
    """The line that tells a user that large return values stay in their task sandboxes (said once a session)."""
    reference = task._details_now().return_file
    assert reference is not None
    return (f"task {task.uid} returned {reference['bytes'] / 1e6:.1f} MB: kept in its task sandbox "
            f"({task.result_file}), read when asked for (task.result()); every return value above the resource "
            "config's results_in_sandbox_above stays in its task sandbox, not in the session's journal")
