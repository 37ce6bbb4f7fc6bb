"""Words that mislead, no more: a pilot's last step after its end, failures grouped by the shape of their reason,
the time a summary gives after a reattach, a run served from the cache."""

from __future__ import annotations

import json

import pytest

import scalems_like as sl
from scalems_like.analytics import summary
from scalems_like.analytics.summary import session_summary
from scalems_like.cli.main import main
from tests.cli.journals import closed_session

UID = "session.20261123.150100.4242.cc01"


def test_failures_are_grouped_by_the_shape_of_their_reason(capsys: pytest.CaptureFixture[str]) -> None:
    reasons = ["bad input 0", "bad input 1", "bad input 2", "no file 'a.txt'", "no file 'b.txt'", "exited with code 3"]
    closed_session(UID, {"DONE": 1, "FAILED": len(reasons)}, reasons)
    failures = session_summary(UID)["failures"]
    assert failures == [
        {"reason": "bad input N", "state": "FAILED", "count": 3, "example": "task.000001",
         "example_reason": "bad input 0"},
        {"reason": "no file '…'", "state": "FAILED", "count": 2, "example": "task.000004",
         "example_reason": "no file 'a.txt'"},
        {"reason": "exited with code 3", "state": "FAILED", "count": 1, "example": "task.000006"}]
    assert main(["profile", UID]) == 0
    shown = capsys.readouterr().out
    assert "│     3 │ bad input N (e.g. bad input 0)" in shown and "bad input 1" not in shown
    assert "│     2 │ no file '…' (e.g. no file 'a.txt')" in shown
    assert "│     1 │ exited with code 3" in shown
    json.dumps(failures)
    assert summary.reason_shape("bad input 12 at 0.5 s") == "bad input N at N s"
    assert summary.reason_shape("""no file 'a.txt' nor "b" """) == """no file '…' nor '…' """


def test_an_ended_pilot_shows_its_last_step_done_not_started(capsys: pytest.CaptureFixture[str]) -> None:
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=120))
        pilot.wait("ACTIVE", timeout=60)
        assert main(["status", session.uid, "--json"]) == 0
        (live,) = json.loads(capsys.readouterr().out)["pilots"]
        assert (live["state"], live["step"], live["step_state"]) == ("ACTIVE", "agent_start", "started")
    assert main(["status", session.uid, "--json"]) == 0
    (ended,) = json.loads(capsys.readouterr().out)["pilots"]
    assert (ended["state"], ended["step"], ended["step_state"]) == ("DONE", "agent_start", "done")
    assert main(["status", session.uid]) == 0
    shown = capsys.readouterr().out
    assert "agent_start (done)" in shown and "(started)" not in shown


def test_the_summary_after_a_reattach_gives_the_sessions_time(capsys: pytest.CaptureFixture[str]) -> None:
    session = sl.Session()
    session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["1.5"]),
                                  sl.TaskDescription(executable="/bin/true")])
    session.wait_tasks(tasks, timeout=60)
    session.detach()
    assert main(["reattach", session.uid]) == 0
    out = capsys.readouterr().out
    makespan = session_summary(session.uid)["makespan"]
    assert makespan >= 1.5
    assert f"{session.uid}: 2 task(s) in {makespan:.1f} s (the session's: first submission to last end)" in out
