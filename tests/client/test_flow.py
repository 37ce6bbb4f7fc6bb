"""Flow control end to end on a 2-core local pilot: the agent takes no more than its task window, the rest wait on
the client; a long task holds up no short one queued behind it."""

from __future__ import annotations

import time

import pytest

import scalems_like as sl
from scalems_like import TaskState
from scalems_like.overlay.flow import task_window
from tests.processes import wait_until


def square(x: int) -> int:
    return x * x


def sleep_long() -> None:
    time.sleep(30)


def sent(tasks: list[sl.Task]) -> list[sl.Task]:
    """Tasks the client sent to a pilot (NEW: still waiting on the client; canceled there: never sent)."""
    return [task for task in tasks if TaskState.SUBMITTED in [state for state, _, _ in task.history]]


@pytest.mark.parametrize("kind", ["function", "executable"])
def test_short_tasks_do_not_wait_behind_a_long_one(session: sl.Session, local_pilot: sl.Pilot, kind: str) -> None:
    session.wait_tasks(session.submit_tasks([sl.TaskDescription(function=square, args=(i,)) for i in range(50)]),
                       timeout=60)  # (short tasks seen: the master pipelines them, many to each worker)
    long = session.submit_tasks([sl.TaskDescription(function=sleep_long) if kind == "function" else
                                 sl.TaskDescription(executable="/bin/sleep", arguments=["30"])])[0]
    wait_until(lambda: long.state is TaskState.RUNNING, what="the long task RUNNING")
    short = session.submit_tasks([sl.TaskDescription(function=square, args=(i,)) for i in range(200)])
    session.wait_tasks(short, timeout=10)  # (before: those queued behind the long task waited for its end, 30 s)
    assert [task.return_value for task in short] == [i * i for i in range(200)]
    assert long.state is TaskState.RUNNING  # (still: the short ones ran on the other worker)
    session.cancel_tasks([long])
    assert long.wait(timeout=30) is TaskState.CANCELED


def test_the_agent_holds_its_window_and_the_rest_wait_on_the_client(session: sl.Session,
                                                                   local_pilot: sl.Pilot) -> None:
    window = task_window(2, None)  # (2 workers, no task ended yet: one running each, 16 each ahead)
    tasks = session.submit_tasks([sl.TaskDescription(function=time.sleep, args=(0.2,)) for _ in range(window + 8)])
    wait_until(lambda: any(task.state in (TaskState.RUNNING, TaskState.DONE) for task in tasks), what="a task ran")
    # (once tasks end, the window follows their duration: 2 running and 10 ahead for tasks of 0.2 s; 23 must end)
    assert len(sent(tasks)) == window and tasks[window].state is TaskState.NEW
    unsent = tasks[-1]
    session.cancel_tasks([unsent])  # a task still on the client: canceled there, never sent
    assert unsent.wait(timeout=10) is TaskState.CANCELED
    assert unsent.reason == "canceled before it was sent to a pilot"
    session.wait_tasks(tasks[:-1], timeout=60)  # each end returns credit: the rest go to the agent as they end
    assert all(task.state is TaskState.DONE for task in tasks[:-1]) and unsent not in sent(tasks)
