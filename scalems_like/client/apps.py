"""Apps: functions and command lines that submit a task when called, with futures as arguments.

    @sl.function_app
    def square(x): return x * x

    @sl.executable_app(outputs=["sum.txt"])
    def add(a, b): return ["sh", "-c", f"echo $(( {a} + {b} )) > sum.txt"]

    total = add(square(3), square(4))          # waits for both squares, then runs
    print(total.result(), total.outputs["sum.txt"].path().read_text())
    squares = square.map(range(1000))          # one bulk submission

Calling an app returns an :class:`AppFuture` (a ``concurrent.futures.Future``, awaitable). An argument that is a
future (an AppFuture or a Task) makes the call wait for it: the task is submitted when every such argument is DONE
(from the futures' own done-callbacks: nothing polls), with each replaced by its result; an
:class:`OutputFile` argument (``future.outputs[NAME]``) is linked into the consumer's task sandbox (executables
get its name; functions get its absolute path). A dependency that did not end DONE fails the call, with a reason
naming it, without submitting anything. Apps run in :func:`scalems_like.current_session` (or ``session=``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cloudpickle

from scalems_like.client import cache
from scalems_like.client.session import Session, current_session
from scalems_like.client.task import Task
from scalems_like.client.task_wire import pickle_by_value_if_local
from scalems_like.descriptions import TaskDescription
from scalems_like.errors import DependencyFailed, TaskFailed
from scalems_like.staging.actions import checksum
from scalems_like.states import TaskState

_submitter: concurrent.futures.ThreadPoolExecutor | None = None
_submitter_lock = threading.Lock()


def _submit_later(function: Callable[[], None]) -> None:
    """Submissions decided in done-callbacks (which run on a session's I/O thread) happen off that thread."""
    global _submitter
    with _submitter_lock:
        if _submitter is None:
            _submitter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scalems-like-apps")
    _submitter.submit(function)


def drain() -> None:
    """Wait until the submissions and cache writes queued so far are done (called when a session closes)."""
    with _submitter_lock:
        submitter = _submitter
    if submitter is not None and not threading.current_thread().name.startswith("scalems-like-apps"):
        submitter.submit(lambda: None).result()


@dataclasses.dataclass(frozen=True)
class OutputFile:
    """A file an executable app's task writes in its sandbox (a future of that file)."""

    producer: AppFuture
    name: str

    def path(self) -> Path:
        """The file's path, once the producer is DONE (waits for it): in its task sandbox, or in the cache."""
        self.producer.result()
        if self.producer.cached is not None:
            return self.producer.cached / self.name
        task = self.producer.task
        assert task is not None and task.sandbox is not None
        return task.sandbox / self.name


class AppFuture(concurrent.futures.Future[Any]):
    """The result of an app call; :attr:`task` is the task once submitted (None while inputs are pending)."""

    def __init__(self, app: str, outputs: Iterable[str] = ()) -> None:
        super().__init__()
        self.app = app
        self.task: Task | None = None
        self.cached: Path | None = None
        """Where the cached output files are, when the result came from the cache (no task ran)."""
        self.outputs = {name: OutputFile(self, name) for name in outputs}

    def __repr__(self) -> str:
        return f"<AppFuture {self.app} {self.task.uid if self.task else 'waiting for inputs'}>"

    def __await__(self) -> Any:
        import asyncio

        return asyncio.wrap_future(self).__await__()

    def result(self, timeout: float | None = None) -> Any:
        """The app's value; waits as :meth:`Task.result` does (a timeout, or a session without a pilot, says so)."""
        self._wait_for_task(timeout)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_for_task(timeout)
        return super().exception(timeout)

    def _wait_for_task(self, timeout: float | None) -> None:
        task = self.task
        if task is not None and not self.done():
            task.wait(timeout)  # (this future is settled from the task's done-callback, before the wait returns)

    def follow(self, task: Task) -> None:
        self.task = task
        task.add_done_callback(self._copy)

    def _copy(self, task: concurrent.futures.Future[Any]) -> None:
        assert isinstance(task, Task)
        if task.state is TaskState.DONE and task.result_file is not None:
            _submit_later(lambda: self._copy_value(task))  # a large file to read: not on the session's I/O thread
        elif task.state is TaskState.DONE:
            self._copy_value(task)
        else:
            self.set_exception(task.exception() or TaskFailed(task.uid, task.state.value, task.reason or ""))

    def _copy_value(self, task: Task) -> None:
        try:
            self.set_result(task.result())
        except Exception as error:  # a value this client cannot unpickle, a result file gone
            self.set_exception(error)


def _dependencies(values: Iterable[Any]) -> list[concurrent.futures.Future[Any]]:
    found: list[concurrent.futures.Future[Any]] = []
    for value in values:
        if isinstance(value, OutputFile):
            found.append(value.producer)
        elif isinstance(value, concurrent.futures.Future):
            found.append(value)
    return found


def _name_of(future: concurrent.futures.Future[Any]) -> str:
    if isinstance(future, AppFuture):
        return f"{future.app} ({future.task.uid if future.task else 'never submitted'})"
    return getattr(future, "uid", repr(future))


def _failure_of(future: concurrent.futures.Future[Any]) -> str | None:
    """Why a finished dependency cannot feed its consumer, or None if it is DONE."""
    if future.cancelled():
        return "was canceled"
    error = future.exception()
    if error is None:
        return None
    return str(getattr(error, "reason", "") or error)


class _App:
    def __init__(self, function: Callable[..., Any], kind: str, outputs: tuple[str, ...],
                 options: dict[str, Any]) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.kind = kind
        self.outputs = outputs
        self.use_cache = bool(options.pop("cache", True))
        self.options = options

    def start(self, session: Session, future: AppFuture, call: tuple[TaskDescription, str | None]) -> None:
        """Settle ``future`` from the cache, or submit its task (and cache the result when it is DONE)."""
        self.start_all(session, [(future, call)])

    def start_all(self, session: Session, calls: list[tuple[AppFuture, tuple[TaskDescription, str | None]]]) -> None:
        """:meth:`start` for many calls: the ones not in the cache go in one submission."""
        misses = []
        for future, (description, key) in calls:
            entry = cache.lookup(key) if key is not None else None
            if entry is not None:
                future.cached = entry["files"]
                future.set_result(entry["value"])
            else:
                misses.append((future, description, key))
        tasks = session.submit_tasks([description for _, description, _ in misses]) if misses else []
        for (future, _, key), task in zip(misses, tasks, strict=True):
            future.follow(task)
            if key is not None:
                task.add_done_callback(functools.partial(self.remember, key=key))

    def remember(self, task: concurrent.futures.Future[Any], key: str) -> None:
        assert isinstance(task, Task)
        if task.state is TaskState.DONE:
            value: bytes | Path | None
            if self.kind == "function":  # a large value: copied from its file in the task sandbox
                value = task.result_file or task._return_pickle()
            else:
                value = cloudpickle.dumps(task.exit_code)
            if value is not None:
                _submit_later(lambda: cache.store(key, self.function.__name__, value, task.sandbox, self.outputs))

    def __call__(self, *args: Any, session: Session | None = None, **kwargs: Any) -> AppFuture:
        session = session or current_session()
        future = AppFuture(self.function.__name__, self.outputs)
        pending = _dependencies([*args, *kwargs.values()])
        if not pending:
            self.start(session, future, self.prepare(args, kwargs))
            return future
        remaining = [len(pending)]
        lock = threading.Lock()

        def one_done(_: concurrent.futures.Future[Any]) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            _submit_later(lambda: self._submit_resolved(session, future, pending, args, kwargs))
        for dependency in pending:
            dependency.add_done_callback(one_done)
        return future

    def _submit_resolved(self, session: Session, future: AppFuture, pending: list[concurrent.futures.Future[Any]],
                         args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for dependency in pending:
            why = _failure_of(dependency)
            if why is not None:
                future.set_exception(DependencyFailed(
                    future.app, TaskState.FAILED.value, f"its input {_name_of(dependency)} did not end DONE: {why}"))
                return
        try:
            self.start(session, future, self.prepare(args, kwargs))
        except Exception as error:  # the session closed meanwhile, a bad description: the future says so
            future.set_exception(error)

    def map(self, *iterables: Iterable[Any], session: Session | None = None) -> list[AppFuture]:
        """Call the app for each item (of zipped iterables); calls without future arguments go in one bulk
        submission."""
        session = session or current_session()
        calls = list(zip(*iterables, strict=True))
        ready = [index for index, call in enumerate(calls) if not _dependencies(call)]
        futures: list[AppFuture | None] = [None] * len(calls)
        for index in ready:
            futures[index] = AppFuture(self.function.__name__, self.outputs)
        self.start_all(session, [(futures[index], self.prepare(calls[index], {}))  # type: ignore[misc]
                                 for index in ready])
        for index, call in enumerate(calls):
            if futures[index] is None:
                futures[index] = self(*call, session=session)
        return futures  # type: ignore[return-value]

    def describe(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> TaskDescription:
        """The task of one call, with resolved inputs."""
        return self.prepare(args, kwargs)[0]

    def prepare(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
                ) -> tuple[TaskDescription, str | None]:
        """The task of one call with resolved inputs, and its cache key (None: not cached)."""
        staging: list[str] = []

        def resolve(value: Any) -> Any:
            if isinstance(value, OutputFile):
                if self.kind == "function":
                    return str(value.path())
                staging.append(f"file://{value.path()} > {value.name}")
                return value.name
            if isinstance(value, concurrent.futures.Future):
                return value.result()
            return value

        def logical(value: Any) -> Any:  # what decides the result: a file by its name and content
            if isinstance(value, OutputFile):
                return ("output file", value.name, checksum(value.path()))
            return resolve(value)

        key = None
        if self.use_cache and cache.enabled():
            pickle_by_value_if_local(self.function)  # (as it will travel: the key is the same before and after)
            key = cache.key_of((self.kind, self.function, [logical(value) for value in args],
                                sorted((name, logical(value)) for name, value in kwargs.items()),
                                sorted(self.options.items()), self.outputs))
        return self.describe_resolved([resolve(value) for value in args],
                                      {name: resolve(value) for name, value in kwargs.items()}, staging), key

    def describe_resolved(self, args: list[Any], kwargs: dict[str, Any], staging: list[str]) -> TaskDescription:
        options = dict(self.options)
        if staging:
            options["input_staging"] = [*options.get("input_staging", ()), *staging]
        options.setdefault("name", self.function.__name__)
        if self.kind == "function":
            return TaskDescription(function=self.function, args=tuple(args), kwargs=kwargs, **options)
        argv = self.function(*args, **kwargs)
        if isinstance(argv, str) or not argv or not all(isinstance(item, str) for item in argv):
            raise TypeError(f"executable app {self.function.__name__} returned {argv!r}: expected a list of "
                            "strings (executable and arguments)")
        return TaskDescription(executable=argv[0], arguments=list(argv[1:]), **options)


def function_app(function: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Decorate a function: calling it submits a function task (``options``: TaskDescription fields)."""
    if function is None:
        return lambda inner: _App(inner, "function", (), options)
    return _App(function, "function", (), options)


def executable_app(function: Callable[..., Any] | None = None, *, outputs: Iterable[str] = (),
                   **options: Any) -> Any:
    """Decorate a function that returns a command line (``[executable, *arguments]``): calling it submits an
    executable task. ``outputs``: files the command writes in its sandbox (``future.outputs[NAME]``)."""
    names = tuple(outputs)
    if function is None:
        return lambda inner: _App(inner, "executable", names, options)
    return _App(function, "executable", names, options)
