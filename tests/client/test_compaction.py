"""Finished tasks compact: once a task's end is committed to the session's journal, its handle keeps its uid, name,
state, reason and exit code, and reads the rest (description, history, sandbox, return value, exception, output)
back from the journal when asked — in the session, after it closed, and after a reattach."""

from __future__ import annotations

import functools
import gc
import shutil
import weakref

import pytest

import scalems_like as sl
from scalems_like import TaskState
from scalems_like.client.task_wire import FUNCTIONS_KEPT
from scalems_like.errors import ScalemsError
from scalems_like.record import journal as journal_module
from scalems_like.record.journal import journal_path


class Payload:
    """A task argument the test can watch die (a weak reference to it)."""

    __slots__ = ("__weakref__", "data")

    def __init__(self, size: int) -> None:
        self.data = b"x" * size


def measure(payload: Payload) -> int:
    print(f"measured {len(payload.data)} bytes")
    return len(payload.data)


def refuse(why: str) -> None:
    raise ValueError(why)


def journaled(session: sl.Session) -> None:
    """Return once every task end seen so far is committed and what follows its commit ran on the I/O thread."""
    engine, journal = session._engine, session._journal
    assert journal is not None
    engine.call(engine.handle_journal)  # (this pass's updates to the journal's queue)
    assert journal.flush()  # (committed: the engine was told, by a command queued before the next one)
    engine.call(lambda: None)


def check_reads(tasks: list[sl.Task]) -> None:
    """What a user reads of the finished tasks, however their handles keep it."""
    done, failed, executable = tasks
    assert done.result() == done.return_value == 100_000 and done.exception() is None
    assert done.stdout == "measured 100000 bytes\n" and done.stderr is None
    assert [entry[0] for entry in done.history] == [TaskState.NEW, TaskState.SUBMITTED, TaskState.QUEUED,
                                                   TaskState.RUNNING, TaskState.DONE]
    assert done.description.function is not None and done.description.function.__name__ == "measure"
    assert done.name == "measure" and done.sandbox is not None and done.sandbox.name == done.uid
    error = failed.exception()
    assert isinstance(error, ValueError) and str(error) == "not today"
    assert "refuse" in error.remote_traceback and failed.traceback == error.remote_traceback  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="not today"):
        failed.result()
    assert failed.state is TaskState.FAILED and failed.history[-1][0] is TaskState.FAILED
    assert executable.result() == 0 and executable.stdout == "out\n" and executable.exit_code == 0
    assert executable.description.arguments == ("-c", "echo out")


def test_finished_tasks_drop_their_payload_and_read_it_back_from_the_journal(session: sl.Session,
                                                                               local_pilot: sl.Pilot) -> None:
    payload = Payload(100_000)
    watched = weakref.ref(payload)
    tasks = session.submit_tasks([
        sl.TaskDescription(function=measure, args=(payload,), name="measure"),
        sl.TaskDescription(function=refuse, args=("not today",)),
        sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo out"]),
    ])
    del payload
    session.wait_tasks(tasks, timeout=60)
    journaled(session)
    assert all(task._details is None and task._description is None for task in tasks)  # compact
    gc.collect()
    assert watched() is None  # the description (and its argument) is no longer held by the session
    check_reads(tasks)
    assert all(task._details is None for task in tasks)  # reading does not keep it again
    uid = session.uid
    session.close()
    check_reads(tasks)  # the journal is read again after the session closed
    again = sl.Session.reattach(uid)
    try:
        reattached = again.tasks
        assert [task.uid for task in reattached] == [task.uid for task in tasks]
        assert all(task._details is None for task in reattached)  # final in the journal: compact at once
        check_reads(reattached)
    finally:
        again.close()
    journal = journal_path(uid)
    shutil.rmtree(journal.parent)
    with pytest.raises(ScalemsError, match=f"task {tasks[0].uid}: its record is in the session's journal {journal}, "
                                           "which is gone"):
        tasks[0].result()
    assert tasks[0].state is TaskState.DONE and tasks[0].name == "measure"  # (what it keeps)


def test_a_session_without_journal_keeps_its_finished_tasks_whole() -> None:
    with sl.Session(journal=False) as session:
        session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=300))
        (task,) = session.submit_tasks([sl.TaskDescription(function=measure, args=(Payload(10),))])
        assert task.result(timeout=60) == 10
        session._engine.call(session._engine.handle_journal)
        assert task._details is not None and task.stdout == "measured 10 bytes\n"  # (nothing to read it back from)


def test_a_function_per_task_is_not_kept_for_every_task(session: sl.Session) -> None:
    """A ``functools.partial`` (or a closure) per task: the session keeps the pickles of its latest functions only,
    and the journal's writer the digests of its latest blobs only."""
    count = max(FUNCTIONS_KEPT, journal_module.KNOWN_BLOBS) + 10
    tasks = session.submit_tasks([sl.TaskDescription(function=functools.partial(measure, Payload(i)))
                                  for i in range(count)])  # (no pilot: they stay NEW)
    assert session._journal is not None and session._journal.flush()
    assert 0 < len(session._pickled_functions) <= FUNCTIONS_KEPT
    assert 0 < len(session._journal.known_blobs) <= journal_module.KNOWN_BLOBS
    assert session._journal.reader.task(tasks[-1].uid) is not None  # (every blob is in the journal all the same)
    assert tasks[0].description.function.args[0].data == b""  # type: ignore[union-attr]


def test_a_tasks_record_is_found_by_the_journals_index(session: sl.Session) -> None:
    """Reading a compacted task back looks up its rows, not every row of the journal (millions at 1 000 000 tasks)."""
    session.open()
    assert session._journal is not None
    session._journal.flush()
    plan = session._journal.connection.execute(f"EXPLAIN QUERY PLAN {journal_module.TASK_UPDATES}", ("task.000000",))
    assert "USING INDEX events_by_task" in " ".join(str(row[-1]) for row in plan)
