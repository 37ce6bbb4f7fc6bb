"""What cannot be pickled says so in words: a function, an argument, a return value (real pilot, real workers)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import TaskState

LOCK = threading.Lock()


def holds_the_lock() -> int:
    with LOCK:
        return 1


def identity(value: object) -> object:
    return value


def returns_a_lock() -> object:
    return threading.Lock()


def test_a_function_holding_a_lock_is_refused_naming_item_field_and_variable(session: sl.Session) -> None:
    descriptions = [sl.TaskDescription(function=identity, args=(1,)),
                    sl.TaskDescription(function=holds_the_lock, name="locked")]
    with pytest.raises(sl.ConfigError) as raised:
        session.submit_tasks(descriptions)
    message = str(raised.value)
    assert message.startswith("submit_tasks: nothing of this batch was submitted; fix or leave out:\n")
    assert "item 1 ('locked'): TaskDescription.function = <function holds_the_lock" in message
    assert "it uses the global 'LOCK' = <unlocked _thread.lock object" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert session.tasks == []  # nothing of the batch was submitted, nothing lost: the batch can be sent again
    (task,) = session.submit_tasks(descriptions[:1])
    assert task.uid == "task.000000"


def test_an_open_file_argument_is_refused_naming_the_argument(session: sl.Session, tmp_path: Path) -> None:
    expected = (r"item 0: TaskDescription.kwargs\['out'\] = <_io.TextIOWrapper .*cannot be sent to a worker: "
                r"PicklingError: Cannot pickle files that are not opened for reading: w")
    with open(tmp_path / "out.txt", "w") as handle, pytest.raises(sl.ConfigError, match=expected):
        session.submit_tasks([sl.TaskDescription(function=identity, kwargs={"value": 1, "out": handle})])


def test_a_return_value_that_cannot_be_sent_back_is_not_reported_as_raised(
        session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(function=returns_a_lock)])
    assert task.wait(timeout=60) is TaskState.FAILED
    assert task.reason is not None and task.reason.startswith("returned a lock that cannot be sent back to the client")
    assert task.reason.endswith("the function itself ran to its end") and "raised" not in task.reason
