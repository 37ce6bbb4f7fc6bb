"""Tasks are futures: concurrent.futures.wait / as_completed, add_done_callback, exception(), asyncio await."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

import scalems_like as sl
from scalems_like import TaskState
from tests.processes import wait_until


def slow_square(x: int) -> int:
    import time

    time.sleep(0.05 * (x % 3))
    return x * x


def fail(message: str) -> None:
    raise KeyError(message)


def test_concurrent_futures_wait_and_as_completed(session: sl.Session, local_pilot: sl.Pilot) -> None:
    tasks = session.submit_tasks([sl.TaskDescription(function=slow_square, args=(i,)) for i in range(20)])
    assert all(isinstance(task, concurrent.futures.Future) for task in tasks)
    seen = [task.result() for task in concurrent.futures.as_completed(tasks, timeout=60)]
    assert sorted(seen) == sorted(i * i for i in range(20))
    done, not_done = concurrent.futures.wait(tasks, timeout=0)
    assert len(done) == 20 and not not_done and all(task.done() for task in tasks)


def test_failed_and_canceled_tasks_settle_their_futures(session: sl.Session, local_pilot: sl.Pilot) -> None:
    failing, sleeping, executable = session.submit_tasks([
        sl.TaskDescription(function=fail, args=("nope",)),
        sl.TaskDescription(executable="/bin/sleep", arguments=["300"]),
        sl.TaskDescription(executable="/bin/sh", arguments=["-c", "exit 3"]),
    ])
    called = threading.Event()
    failing.add_done_callback(lambda task: called.set())
    done, _ = concurrent.futures.wait([failing, executable], timeout=60)
    assert done == {failing, executable} and called.wait(10)
    error = failing.exception()
    assert isinstance(error, KeyError) and "nope" in str(error) and "raise KeyError" in error.remote_traceback
    with pytest.raises(KeyError):
        failing.result()
    assert isinstance(executable.exception(), sl.TaskFailed)
    assert executable.exit_code == 3 and str(executable.exception()).endswith("FAILED: exited with code 3")
    wait_until(sleeping.running, timeout=60, what="the sleeping task runs")
    assert sleeping.cancel() is True
    (canceled,), _ = concurrent.futures.wait([sleeping], timeout=60)
    assert canceled.cancelled() and canceled.state is TaskState.CANCELED
    with pytest.raises(concurrent.futures.CancelledError) as raised:  # as a cancelled Future's result() does
        sleeping.result()
    assert isinstance(raised.value, sl.TaskWasCanceled) and isinstance(raised.value, sl.TaskFailed)
    assert raised.value.reason == sleeping.reason and "canceled" in str(raised.value)
    assert sleeping.cancel() is False  # already ended
    late = threading.Event()
    sleeping.add_done_callback(lambda task: late.set())  # a callback added after the end runs at once
    assert late.is_set()


def test_tasks_are_awaitable(session: sl.Session, local_pilot: sl.Pilot) -> None:
    async def workflow() -> list[int]:
        tasks = session.submit_tasks([sl.TaskDescription(function=slow_square, args=(i,)) for i in range(5)])
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(workflow()) == [0, 1, 4, 9, 16]

    async def failing() -> None:
        (task,) = session.submit_tasks([sl.TaskDescription(function=fail, args=("async",))])
        await task

    with pytest.raises(KeyError, match="async"):
        asyncio.run(failing())
