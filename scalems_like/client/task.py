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
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, Protocol

import cloudpickle

from scalems_like.descriptions import TaskDescription
from scalems_like.errors import RemoteError, ResultFileError, TaskFailed, TaskWasCanceled
from scalems_like.protocol.tasks import CLIENT_HOST, JournaledUpdate, ResultFile, task_update
from scalems_like.staging.actions import checksum_of
from scalems_like.states import TaskState, task_transition_allowed


class TaskOwner(Protocol):
    """What a task asks of its session: a :class:`~scalems_like.client.session.Session`, or the follower of a
    session another client holds (:mod:`scalems_like.psij_executor.follower`)."""

    def wait_tasks(self, tasks: Sequence[Task] | None = None, timeout: float | None = None) -> list[Task]: ...

    def cancel_tasks(self, tasks: Sequence[Task]) -> None: ...


MAX_OUTPUT_BYTES = 1024 * 1024
"""How much of an executable's stdout/stderr file ``Task.stdout``/``Task.stderr`` read (the file keeps it all)."""


class Task(concurrent.futures.Future[Any]):
    """A submitted task, and a future of its result. Read-only for users; the session updates it as messages
    arrive."""

    def __init__(self, uid: str, description: TaskDescription, session: TaskOwner) -> None:
        super().__init__()
        self.uid = uid
        self.description = description
        self._session = session
        self.state = TaskState.NEW
        self.reason: str | None = None
        """Why the task is FAILED or CANCELED (or why it was retried)."""
        self.exit_code: int | None = None
        self.pilot: str | None = None
        self.sandbox: Path | None = None
        self.history: list[tuple[TaskState, float, str]] = [(TaskState.NEW, 0.0, CLIENT_HOST)]
        """(state, time, host) of every state change, stamped where it happened."""
        self.traceback: str | None = None
        """The remote traceback of a function task that raised, as text."""
        self.attempt = 0
        self.interrupted: str | None = None
        """"queued" or "running" when the task FAILED because its pilot ended (``Session.resume`` runs it again)."""
        self._return_value: bytes | None = None
        self._return_file: ResultFile | None = None
        """A return value kept in the task sandbox: its file's ``name``, ``bytes`` and ``sha256``."""
        self._exception_pickle: bytes | None = None
        self._output: str | None = None
        self._callbacks: list[Callable[[Task, TaskState], None]] = []

    def __repr__(self) -> str:
        return f"<Task {self.uid} {self.state.value}>"

    @property
    def name(self) -> str:
        return self.description.name or self.uid

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
        return self._read_output(self.description.stdout)

    @property
    def stderr(self) -> str | None:
        return self._read_output(self.description.stderr, stderr=True)

    def _read_output(self, name: str, *, stderr: bool = False) -> str | None:
        if self.description.function is not None:
            return None if stderr else self._output
        if self.sandbox is None:
            return None
        path = self.sandbox / name
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
        if self._return_file is not None:
            return self._load_result_file(self._return_file)
        return None if self._return_value is None else cloudpickle.loads(self._return_value)

    @property
    def result_file(self) -> Path | None:
        """The file in the task sandbox that holds the return value's pickle, when it was too large to travel
        (None when it came back with the task's update)."""
        if self._return_file is None or self.sandbox is None:
            return None
        return self.sandbox / self._return_file["name"]

    def _load_result_file(self, reference: ResultFile) -> Any:
        path = self.result_file
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
        if self.state is not TaskState.FAILED or self.description.function is None or self.traceback is None:
            return None
        error: BaseException
        try:
            error = cloudpickle.loads(self._exception_pickle) if self._exception_pickle else RemoteError(self.reason)
        except Exception:
            error = RemoteError(self.reason)
        error.remote_traceback = self.traceback
        return error

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
        return self.return_value if self.description.function is not None else self.exit_code

    def cancel(self) -> bool:
        """Ask for the task's end (it ends CANCELED unless it finishes first); False if it already ended."""
        if self.state.is_final:
            return False
        self._session.cancel_tasks([self])
        return True

    def add_callback(self, callback: Callable[[Task, TaskState], None]) -> None:
        """Call ``callback(task, state)`` on every state change (from the session's I/O thread: keep it short)."""
        self._callbacks.append(callback)

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
        when = float(update.get("time", 0.0))
        if state is TaskState.QUEUED and any(entry[0] is state and entry[1] == when for entry in self.history):
            return None  # not a retry: a QUEUED it had, delivered again (a reattach reads the agent's journal)
        self.state = state
        self.history.append((state, when, str(update.get("host", "?"))))
        self.attempt = update.get("attempt", self.attempt)
        if "reason" in update:
            self.reason = update["reason"]
        if "exit_code" in update:
            self.exit_code = update["exit_code"]
        if "return_value" in update:
            self._return_value = update["return_value"]
        if "return_value_file" in update:
            self._return_file = update["return_value_file"]
        if "exception" in update:
            self._exception_pickle = update["exception"]
        if "traceback" in update:
            self.traceback = update["traceback"]
        if "output" in update:
            self._output = update["output"]
        if "interrupted" in update:
            self.interrupted = update["interrupted"]
        if "pilot" in update:  # client-side updates only: where the task was sent
            self.pilot = update["pilot"]
            sandbox = update.get("sandbox")
            self.sandbox = Path(sandbox) if sandbox else None
        self._settle()
        return state

    def _requeue_update(self, when: float, reason: str, attempt: int) -> JournaledUpdate:
        """The update that sends this task back to NEW, to run on another pilot (``Session.resume``)."""
        return task_update(self.uid, TaskState.NEW, when, CLIENT_HOST, reason=reason, requeue=True, pilot=None,
                           sandbox=None, attempt=attempt)

    def _requeue(self, when: float, reason: str) -> None:
        """Back to NEW (applied by :meth:`_apply` from a ``requeue`` update)."""
        self.state = TaskState.NEW
        self.history.append((TaskState.NEW, when, CLIENT_HOST))
        self.reason, self.pilot, self.sandbox, self.interrupted = reason, None, None, None
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
    assert task._return_file is not None
    return (f"task {task.uid} returned {task._return_file['bytes'] / 1e6:.1f} MB: kept in its task sandbox "
            f"({task.result_file}), read when asked for (task.result()); every return value above the resource "
            "config's results_in_sandbox_above stays in its task sandbox, not in the session's journal")
