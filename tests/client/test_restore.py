"""Restore from the journal when things are not tidy: a crash between a pilot's row and its tasks' events, a
restore that fails on the way, a pilot sandbox that is slow to read, one function shared by many tasks.

Journals are real SQLite; some are written through the Journal API (a state a crash leaves, set up exactly),
the others by real sessions with real pilots.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import scalems_like as sl
from scalems_like import PilotState, TaskState, protocol
from scalems_like.client import restore as restore_module
from scalems_like.client.task_wire import to_wire
from scalems_like.errors import ScalemsError
from scalems_like.protocol.records import encode_record
from scalems_like.record.journal import Journal, journal_path, now_text
from tests.processes import alive, wait_until


def write_journal(uid: str, sandbox: Path, pilot_state: str, descriptions: list[sl.TaskDescription],
                  events: list[dict[str, Any]]) -> None:
    """The journal of a detached session with one local pilot (``pilot.0000`` in ``sandbox``)."""
    journal = Journal.create(uid, {"uid": uid, "created": now_text(), "state": "detached"})
    journal.start()
    journal.add_tasks([(f"task.{i:06d}", i, {**to_wire(d, Path.cwd(), {}), "uid": f"task.{i:06d}"})
                       for i, d in enumerate(descriptions)])
    journal.add_updates(events)
    journal.save_pilot(("pilot.0000", cloudpickle.dumps(sl.PilotDescription(cores=1, runtime=60)), "local",
                        str(sandbox), None, pilot_state, None))
    journal.close()


def sent(uid: str, sandbox: Path) -> dict[str, Any]:
    """The client's SUBMITTED update of a task sent to pilot.0000."""
    return {"uid": uid, "state": "SUBMITTED", "time": 1.0, "host": "client", "pilot": "pilot.0000",
            "sandbox": str(sandbox / "tasks" / uid)}


def session_threads(uid: str) -> list[str]:
    return [thread.name for thread in threading.enumerate() if uid in thread.name]


def journal_state(uid: str) -> str:
    with sqlite3.connect(journal_path(uid)) as connection:
        return connection.execute("SELECT value FROM session WHERE key = 'state'").fetchone()[0]


def test_tasks_left_unfinished_under_a_final_pilot_are_interrupted_and_resumed(tmp_path: Path) -> None:
    """The client died after its journal took the pilot's final row, before its tasks' final events."""
    marks = tmp_path / "marks"
    marks.mkdir()
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    script = f"echo run >> {marks}/long; [ -e {marks}/slept ] || {{ touch {marks}/slept; sleep 60; }}"
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sh", arguments=["-c", script],
                                                       idempotent=True)])
    # the client has the RUNNING update (its journal gets it by the detach), not only the task its first line
    wait_until(lambda: task.state is TaskState.RUNNING and (marks / "long").exists(), timeout=60,
               what="the task started, as the client knows")
    uid, agent = session.uid, pilot.agent_pid
    assert agent is not None
    session.detach()
    os.kill(agent, signal.SIGKILL)
    wait_until(lambda: not alive(agent))
    with sqlite3.connect(journal_path(uid)) as connection:  # the pilot's row as its end would have left it
        connection.execute("UPDATE pilots SET state = 'FAILED', failure = 'batch job failed, exit code -9'")
    reattached = sl.Session.reattach(uid)
    try:
        (again,) = reattached.tasks
        assert again.state is TaskState.FAILED and again.interrupted == "running"  # not left RUNNING forever
        assert again.reason == "pilot pilot.0000 ended FAILED: batch job failed, exit code -9"
        assert reattached.wait_tasks(timeout=1) == [again]
    finally:
        reattached.detach()
    resumed = sl.Session.resume(uid)
    try:
        (again,) = resumed.tasks
        resumed.wait_tasks(timeout=60)
        assert again.state is TaskState.DONE  # ran again (it is idempotent), on a new pilot
        old, new = resumed.pilots
        assert old.state is PilotState.FAILED and again.pilot == new.uid
    finally:
        resumed.close()
    assert (marks / "long").read_text() == "run\nrun\n"


def test_a_corrupt_journal_row_fails_the_restore_naming_session_and_cause() -> None:
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(cores=1, runtime=60))
        session.wait_tasks(session.submit_tasks([sl.TaskDescription(executable="/bin/true")]), timeout=60)
    uid = session.uid
    with sqlite3.connect(journal_path(uid)) as connection:
        connection.execute("UPDATE tasks SET wire = X'c1'")  # 0xc1: never used by MessagePack
    with pytest.raises(ScalemsError, match=rf"session {uid} could not be reattached: FormatError"):
        sl.Session.reattach(uid)
    assert session_threads(uid) == []
    assert journal_state(uid) == "closed"


def test_a_pilot_sandbox_that_cannot_be_read_fails_the_restore_and_stops_what_it_started(tmp_path: Path) -> None:
    uid, sandbox = "session.unreadable", tmp_path / "pilot.0000"
    (sandbox / "agent.journal").mkdir(parents=True)  # read as a file: IsADirectoryError
    write_journal(uid, sandbox, "ACTIVE", [sl.TaskDescription(executable="/bin/true")], [sent("task.000000", sandbox)])
    with pytest.raises(ScalemsError, match=rf"session {uid} could not be resumed: pilot pilot.0000 "
                                           rf"\({sandbox}\): IsADirectoryError"):
        sl.Session.resume(uid)
    assert session_threads(uid) == []  # neither the I/O thread nor the journal's writer runs on
    assert journal_state(uid) == "detached"  # not "open": no client holds it


def test_a_slow_pilot_sandbox_is_read_off_the_io_thread(tmp_path: Path) -> None:
    """``agent.journal`` is a FIFO: reading it blocks until this test writes to it (a hung file system)."""
    uid, sandbox = "session.slow", tmp_path / "pilot.0000"
    sandbox.mkdir()
    os.mkfifo(sandbox / "agent.journal")
    write_journal(uid, sandbox, "ACTIVE", [sl.TaskDescription(executable="/bin/true")], [sent("task.000000", sandbox)])
    session = sl.Session(uid)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        restoring = pool.submit(restore_module.restore, session, session._engine, resume=False,
                               pilot_description=None)
        writer = os.open(sandbox / "agent.journal", os.O_WRONLY)  # returns once the restore is reading
        try:
            answered = threading.Event()
            assert session._engine.post(answered.set)
            assert answered.wait(10), "the I/O thread is stuck in the read"
            done = {"uid": "task.000000", "state": "DONE", "time": 2.0, "host": "node1", "exit_code": 0}
            os.write(writer, encode_record(protocol.encode(protocol.TaskUpdates([done]))))
        finally:
            os.close(writer)
        assert restoring.result(timeout=60) is session
    try:
        (task,) = session.tasks
        assert task.state is TaskState.DONE  # from the agent's journal
        (pilot,) = session.pilots
        assert pilot.state is PilotState.FAILED and "never reported" in (pilot.failure or "")
    finally:
        session.close()


def test_a_function_shared_by_many_tasks_is_unpickled_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    uid = "session.shared-function"
    descriptions = [sl.TaskDescription(function=abs, args=(-i,)) for i in range(1000)]
    blob = cloudpickle.dumps(abs)
    write_journal(uid, tmp_path / "pilot.0000", "DONE", descriptions, [])
    loads, pickles = cloudpickle.loads, []

    def counting(data: bytes, *args: Any, **kwargs: Any) -> Any:
        pickles.append(data)
        return loads(data, *args, **kwargs)
    monkeypatch.setattr(restore_module.cloudpickle, "loads", counting)
    session = sl.Session.reattach(uid)
    try:
        assert len(session.tasks) == 1000 and session.tasks[999].description.function is abs
        assert pickles.count(blob) == 1
    finally:
        session.detach()


def test_a_pilot_left_bootstrapping_is_followed_by_the_reattached_client_until_its_agent_starts(
        tmp_path: Path) -> None:
    """Detaching while a pilot is still queued or bootstrapping is the normal case on a cluster: the reattached
    client waits for its agent as for a new pilot's (it ended FAILED, 'never reported', and its job was canceled)."""
    gate = tmp_path / "go"
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(
        cores=1, runtime=300, pre_bootstrap=[f"while [ ! -e {gate} ]; do sleep 0.1; done"]))
    session.submit_tasks([sl.TaskDescription(executable="/bin/echo", arguments=["after the reattach"])])
    wait_until(lambda: pilot.bootstrap_step == "hooks", timeout=60, what="the bootstrap's hooks step")
    uid = session.uid
    session.detach()
    reattached = sl.Session.reattach(uid)  # before the agent could ever report
    try:
        (again,) = reattached.pilots
        assert again.state in (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING), again.failure
        gate.touch()
        again.wait("ACTIVE", timeout=60)
        (done,) = reattached.tasks
        assert done.wait(timeout=60) is TaskState.DONE and done.stdout == "after the reattach\n"
    finally:
        reattached.close()


def test_a_pilot_left_bootstrapping_whose_job_is_gone_ends_failed_saying_so(tmp_path: Path) -> None:
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300, pre_bootstrap=["sleep 300"]))
    wait_until(lambda: pilot.bootstrap_step == "hooks", timeout=60, what="the bootstrap's hooks step")
    uid, job = session.uid, int(pilot.native_id or 0)
    session.detach()
    import psutil

    root = psutil.Process(job)
    for process in [*root.children(recursive=True), root]:  # the whole local job: its bootstrap, the hook's sleep
        with contextlib.suppress(psutil.NoSuchProcess):  # (one may end as its parent is killed)
            process.kill()
    wait_until(lambda: not alive(job), timeout=30, what="the job ended")
    reattached = sl.Session.reattach(uid)
    try:
        (again,) = reattached.pilots
        assert again.state is PilotState.FAILED
        assert again.failure == "it was BOOTSTRAPPING when the client left, and never reported; its batch job is gone"
    finally:
        reattached.close()
