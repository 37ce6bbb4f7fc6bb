"""The session journal (real SQLite in WAL mode) and the agent's journal file, including torn writes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

import cloudpickle
import pytest

from scalems_like import protocol
from scalems_like.protocol.records import encode_record, read_records
from scalems_like.record.journal import Journal, journal_path


def double(x: int) -> int:
    return 2 * x


def wire(uid: str, function: bool) -> dict:
    if function:
        return {"uid": uid, "kind": "function", "function": cloudpickle.dumps(double),
                "call_arguments": cloudpickle.dumps(((3,), {}))}
    return {"uid": uid, "kind": "executable", "executable": "/bin/echo", "arguments": [uid]}


def update(uid: str, state: str) -> dict:
    return {"uid": uid, "state": state, "time": 1.0, "host": "node1"}


def test_round_trip_keeps_order_and_stores_each_function_once() -> None:
    journal = Journal.create("session.journal-test", {"uid": "session.journal-test"})
    journal.start()
    journal.add_tasks([(f"task.{i:06d}", i, wire(f"task.{i:06d}", function=i % 2 == 0)) for i in range(100)])
    journal.add_updates([update(f"task.{i:06d}", "SUBMITTED") for i in range(100)])
    journal.add_updates([update(f"task.{i:06d}", "DONE") for i in range(0, 100, 3)])
    journal.save_pilot(("pilot.0000", b"description", "local", "/tmp/x", "1234", "ACTIVE", None))
    assert journal.flush()
    journal.close()
    again = Journal.open("session.journal-test")
    tasks = list(again.tasks())
    assert [uid for uid, _ in tasks] == [f"task.{i:06d}" for i in range(100)]
    assert cloudpickle.loads(tasks[0][1]["function"])(4) == 8 and tasks[1][1]["arguments"] == ["task.000001"]
    assert again.connection.execute("SELECT COUNT(*) FROM blobs").fetchone() == (1,)
    events = list(again.events())
    assert len(events) == 134 and events[0]["state"] == "SUBMITTED" and events[-1] == update("task.000099", "DONE")
    assert again.counts() == {"DONE": 34, "SUBMITTED": 66}
    assert again.pilots() == [("pilot.0000", b"description", "local", "/tmp/x", "1234", "ACTIVE", None)]


def test_journal_is_private() -> None:
    journal = Journal.create("session.private", {})
    journal.close()
    path = journal_path("session.private")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_missing_journal_names_the_session_and_path() -> None:
    with pytest.raises(FileNotFoundError, match=r"no journal for session 'session\.nope' at .*journal\.sqlite"):
        Journal.open("session.nope")


def test_torn_last_transaction_is_ignored_and_nothing_earlier_is_lost(tmp_path: Path) -> None:
    """The client killed in the middle of a write: the WAL ends in a partial frame."""
    journal = Journal.create("session.torn", {})
    journal.start()
    journal.add_tasks([(f"task.{i:06d}", i, wire(f"task.{i:06d}", function=False)) for i in range(50)])
    journal.add_updates([update(f"task.{i:06d}", "DONE") for i in range(50)])
    assert journal.flush()
    journal.add_updates([update(f"task.{i:06d}", "FAILED") for i in range(50)])  # the batch that gets torn
    assert journal.flush()
    source = journal_path("session.torn")
    wal = Path(f"{source}-wal")
    assert wal.stat().st_size > 0  # still in the WAL: copy it as a killed client would leave it
    shutil.copy(source, tmp_path / "journal.sqlite")
    data = wal.read_bytes()
    (tmp_path / "journal.sqlite-wal").write_bytes(data[:len(data) - 100])
    journal.close()
    copy = sqlite3.connect(tmp_path / "journal.sqlite")
    states = [row[0] for row in copy.execute('SELECT "update" FROM events')]
    assert len(states) == 50  # the whole first batch, none of the torn one
    assert copy.execute("SELECT COUNT(*) FROM tasks").fetchone() == (50,)


def test_agent_journal_cut_short_keeps_every_complete_record(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    first, second = [update("task.000000", "RUNNING")], [update("task.000000", "DONE"), update("task.000001", "DONE")]
    data = (encode_record(protocol.encode(protocol.TaskUpdates(first)))
            + encode_record(protocol.encode(protocol.TaskUpdates(second))))
    path.write_bytes(data[:-3])
    assert read_records(path) == first
    path.write_bytes(data)
    assert read_records(path) == first + second
    assert read_records(tmp_path / "missing") == []
    os.truncate(path, 2)  # not even a length prefix
    assert read_records(path) == []
