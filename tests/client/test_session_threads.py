"""The session's I/O thread under the ways users (and their callbacks) reach it: threads, callbacks, close."""

from __future__ import annotations

import threading

import pytest

import scalems_like as sl
from scalems_like import PilotState, TaskState


def test_callback_can_call_back_into_the_session(session: sl.Session, local_pilot: sl.Pilot) -> None:
    """A callback runs on the I/O thread; canceling from it must not wait on that same thread."""
    sleeper, trigger = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["120"]),
                                             sl.TaskDescription(executable="/bin/sleep", arguments=["0.2"])])
    trigger.add_callback(lambda _task, state: session.cancel_tasks([sleeper]) if state is TaskState.DONE else None)
    assert sleeper.wait(timeout=60) is TaskState.CANCELED


def test_concurrent_submitters_get_distinct_ordered_uids(session: sl.Session, local_pilot: sl.Pilot) -> None:
    batches: list[list[sl.Task]] = []

    def submit() -> None:
        batches.append(session.submit_tasks([sl.TaskDescription(executable="/bin/true") for _ in range(50)]))
    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uids = [task.uid for task in session.tasks]
    assert len(uids) == len(set(uids)) == 400
    assert uids == sorted(uids)
    for batch in batches:  # each submission's tasks are numbered consecutively
        numbers = [int(task.uid.split(".")[1]) for task in batch]
        assert numbers == list(range(numbers[0], numbers[0] + 50))
    session.wait_tasks(timeout=120)
    assert {task.state for task in session.tasks} == {TaskState.DONE}


def test_a_failing_engine_step_does_not_stop_the_session(session: sl.Session, local_pilot: sl.Pilot) -> None:
    session._engine.post(lambda: 1 / 0)  # stands for any bug or batch-system error inside one loop step
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/true")])
    assert task.wait(timeout=60) is TaskState.DONE


def test_calls_after_close_raise_instead_of_hanging() -> None:
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    session.close()
    assert pilot.state.is_final
    with pytest.raises(sl.ScalemsError, match="is closed"):
        session._engine.call(lambda: None)
    with pytest.raises(sl.ScalemsError, match="is closed"):
        session.submit_tasks([sl.TaskDescription(executable="/bin/true")])


def test_pilots_of_one_resource_share_one_adapter(session: sl.Session) -> None:
    first = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    second = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    records = session._engine.records
    assert records[first.uid].adapter is records[second.uid].adapter
    first.cancel()
    assert first.wait(timeout=60) is PilotState.CANCELED
    second.wait("ACTIVE", timeout=60)
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/true")])
    assert task.wait(timeout=60) is TaskState.DONE and task.pilot == second.uid
