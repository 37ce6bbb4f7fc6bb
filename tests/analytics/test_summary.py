"""Profile rows of a known session (``session_uid``: a real journal, see known_session.py) → intervals, pilot
phases, summary, tables."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from scalems_like.analytics.intervals import pilot_phases, task_intervals
from scalems_like.analytics.summary import session_summary, summary_tables
from scalems_like.errors import ConfigError
from scalems_like.record.profile import load_rows


def test_rows_are_in_client_time_with_agent_times_corrected(session_uid: str) -> None:
    rows = load_rows(session_uid)
    running = [row for row in rows if row["event"] == "RUNNING"]
    assert [(row["uid"], row["time"], row["stamped"], row["slot"]) for row in running] == [
        ("t1", 104.0, 99.0, "w.0"), ("t2", 106.0, 101.0, "w.1"), ("t3", 109.0, 104.0, "w.0")]
    assert running[0]["pilot"] == "pilot.0000" and running[0]["name"] == "sim" and running[0]["cores"] == 1
    submitted = next(row for row in rows if row["event"] == "SUBMITTED" and row["component"] == "task")
    assert submitted["time"] == submitted["stamped"] == 103.5  # the client's own stamp is not corrected
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)
    steps = [(row["name"], row["event"], row["time"]) for row in rows if row["component"] == "bootstrap"]
    assert steps == [("environment", "started", 101.5), ("environment", "done", 102.5)]


def test_intervals_and_phases(session_uid: str) -> None:
    rows = load_rows(session_uid)
    intervals = task_intervals(rows)
    assert [(i.uid, i.start, i.end, i.slot, i.state) for i in intervals] == [
        ("t1", 104, 108, "w.0", "DONE"), ("t2", 106, 110, "w.1", "FAILED"), ("t3", 109, 113, "w.0", "FAILED")]
    (pilot,) = pilot_phases(rows, intervals).values()
    assert (pilot.submitted, pilot.bootstrapping, pilot.active, pilot.shutdown, pilot.end) == (100, 101, 103, 113, 114)
    assert (pilot.state, pilot.cores, pilot.slots) == ("DONE", 2, ["w.0", "w.1"])


def test_summary_numbers(session_uid: str) -> None:
    summary = session_summary(session_uid)
    assert summary["tasks"] == 5
    assert summary["states"] == {"NEW": 1, "DONE": 1, "FAILED": 2, "CANCELED": 1}
    assert summary["task_seconds"] == {"total": 12.0, "median": 4.0, "max": 4.0}
    assert summary["makespan"] == pytest.approx(113 - 103.5)
    assert summary["utilisation"] == pytest.approx(12 / 20)  # active 103..113 on 2 cores
    (pilot,) = summary["pilots"]
    assert pilot["split"] == pytest.approx({"bootstrap": 4, "busy": 12, "idle": 8, "shutdown": 2})
    assert pilot["queued"] == 1 and pilot["utilisation"] == pytest.approx(0.6)
    assert summary["failures"] == [
        {"reason": "exited with code 3", "state": "FAILED", "count": 2, "example": "t2"},
        {"reason": "session closed", "state": "CANCELED", "count": 1, "example": "t4"}]
    assert [item["uid"] for item in summary["slowest"]] == ["t1", "t2", "t3"]
    json.dumps(summary)  # JSON-able as it is


def test_summary_tables_render(session_uid: str) -> None:
    console = Console(record=True, width=100)
    for table in summary_tables(session_summary(session_uid)):
        console.print(table)
    text = console.export_text()
    assert "│ FAILED   │     2 │" in text and "│ NEW      │     1 │" in text
    assert "│     2 │ exited with code 3 │" in text and "not DONE, by reason" in text
    assert "│ pilot.0000 │ DONE  │     2 │ 1.00 s │  15% │  46% │  31% │   8% │ 60.0% │" in text


def test_a_session_without_a_journal_is_named(session_uid: str) -> None:
    expected = "session 'session.nope': no journal for session 'session.nope' at "
    with pytest.raises(ConfigError, match=re.escape(expected)):
        session_summary("session.nope")
