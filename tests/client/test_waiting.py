"""Waiting on tasks that nothing can run: the waits say why, and a wait without a timeout does not hang forever."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import TaskState, paths
from scalems_like.client.pilot import describe_pilots

LOCAL_CONFIG = Path(__file__).resolve().parents[2] / "resource_configs" / "local.yaml"


def echo() -> sl.TaskDescription:
    return sl.TaskDescription(executable="/bin/echo", arguments=["hello"])


@pytest.mark.parametrize(
    "wait",
    [
        lambda session, task: session.wait_tasks([task], timeout=0.2),
        lambda session, task: task.wait(timeout=0.2),
        lambda session, task: task.result(timeout=0.2),
        lambda session, task: task.exception(timeout=0.2),
    ],
    ids=["wait_tasks", "wait", "result", "exception"],
)
def test_a_wait_that_times_out_says_the_session_has_no_pilot(
        session: sl.Session, wait: Callable[[sl.Session, sl.Task], object]) -> None:
    (task,) = session.submit_tasks([echo()])
    with pytest.raises(sl.WaitTimeout, match=r"1 task\(s\) not final, .*; the session has no pilot \(submit one"):
        wait(session, task)
    assert task.state is TaskState.NEW  # still waiting for a pilot


def test_a_wait_that_times_out_says_how_the_pilots_stand(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["60"])])
    with pytest.raises(sl.WaitTimeout, match=r"1 task\(s\) not final, .*; pilots: 1 ACTIVE$"):
        task.wait(timeout=0.2)


def test_waiting_without_a_timeout_on_nothing_raises_at_once_and_the_tasks_stay_queued(session: sl.Session) -> None:
    tasks = session.submit_tasks([echo() for _ in range(3)])
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            session.wait_tasks()
        except BaseException as error:  # (the outcome is what is checked)
            outcome.append(error)
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(timeout=30)  # (it hung forever before: the session's close ends it if this check fails)
    assert not waiter.is_alive(), "wait_tasks() with no pilot and no timeout is still waiting"
    assert len(outcome) == 1 and isinstance(outcome[0], sl.NoPilot)
    assert "3 task(s) cannot run: the session has no pilot" in str(outcome[0])
    for waiting in (lambda: tasks[0].wait(), lambda: tasks[0].result(), lambda: tasks[0].exception()):
        with pytest.raises(sl.NoPilot, match="submit_pilot"):
            waiting()
    assert {task.state for task in tasks} == {TaskState.NEW}
    session.submit_pilot(sl.PilotDescription(cores=1))  # the tasks were kept for it
    session.wait_tasks(tasks)
    assert [task.stdout for task in tasks] == ["hello\n"] * 3


def test_a_pilot_another_thread_is_submitting_is_waited_for(session: sl.Session) -> None:
    """While another thread is inside ``submit_pilot`` (held here reading its resource config from a FIFO), a wait
    without a timeout waits for that pilot instead of raising."""
    resources = paths.user_config_dir() / "resources"
    resources.mkdir(parents=True)
    fifo = resources / "held.yaml"
    os.mkfifo(fifo)
    (task,) = session.submit_tasks([echo()])
    submitted: list[sl.Pilot] = []
    submitter = threading.Thread(target=lambda: submitted.append(
        session.submit_pilot(sl.PilotDescription(resource="held", cores=1))), daemon=True)
    submitter.start()
    with open(fifo, "w") as config:  # (opens once the submitter reads it: it is inside submit_pilot)
        outcome: list[object] = []

        def wait() -> None:
            try:
                outcome.append(session.wait_tasks([task]))
            except BaseException as error:  # (the outcome is what is checked)
                outcome.append(error)
        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        config.write(LOCAL_CONFIG.read_text())
    fifo.unlink()  # (every later config lookup reads the directory again)
    submitter.join(timeout=60)
    waiter.join(timeout=60)
    assert submitted and outcome == [[task]], outcome
    assert task.state is TaskState.DONE


def test_the_pilots_in_words(session: sl.Session, local_pilot: sl.Pilot) -> None:
    assert describe_pilots([], submitting=0) == "the session has no pilot (submit one with session.submit_pilot)"
    assert describe_pilots([], submitting=1) == "the session's first pilot is being submitted"
    assert describe_pilots([local_pilot], submitting=0) == "pilots: 1 ACTIVE"
    local_pilot.cancel()
    local_pilot.wait(timeout=60)
    assert describe_pilots([local_pilot, local_pilot], submitting=0) == "no live pilot (pilots: 2 CANCELED)"


@sl.function_app
def square(x: int) -> int:
    return x * x


def test_app_futures_wait_as_tasks_do(session: sl.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # (a cache of its own)
    future = square(3)
    with pytest.raises(sl.WaitTimeout, match="the session has no pilot"):
        future.result(timeout=0.2)
    with pytest.raises(sl.NoPilot):
        future.exception()
    session.submit_pilot(sl.PilotDescription(cores=1))
    assert future.result() == 9 and future.exception() is None


def test_waiting_on_many_tasks_looks_at_each_finished_task_about_once(
        session: sl.Session, local_pilot: sl.Pilot, monkeypatch: pytest.MonkeyPatch) -> None:
    """wait_tasks wakes on every batch of updates; each wake checks from the first unfinished task on (it rescanned
    every unfinished task: 4 000 executables cost the client more than launching them)."""
    checks = []  # the waiting (this) thread's; the session's I/O thread has its own
    final = TaskState.is_final.fget
    assert final is not None
    waiting = threading.get_ident()

    def counted(state: TaskState) -> bool:
        if threading.get_ident() == waiting:
            checks.append(1)
        return final(state)
    monkeypatch.setattr(TaskState, "is_final", property(counted))
    count = 3000
    tasks = session.submit_tasks([sl.TaskDescription(function=pow, args=(2, i)) for i in range(count)])
    session.wait_tasks(tasks)
    assert all(task.state is TaskState.DONE for task in tasks)
    assert len(checks) < 2 * count, f"{len(checks)} state checks for {count} tasks"
