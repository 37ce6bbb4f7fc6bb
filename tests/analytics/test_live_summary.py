"""The summary of a session a live client holds counts what runs until now, not until its last recorded event."""

from __future__ import annotations

import time

import scalems_like as sl
from scalems_like.analytics.summary import session_summary
from scalems_like.states import TaskState


def test_a_running_task_counts_until_now_while_the_session_is_open(session: sl.Session,
                                                                   local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["30"])])
    deadline = time.monotonic() + 30
    while task.state is not TaskState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    session.profile(frame=False)  # (the journal has the RUNNING row once this returns)
    running_since = time.time()
    time.sleep(1.5)  # the span being measured: nothing is recorded in it
    live = session_summary(session.uid)
    assert live["states"] == {"RUNNING": 1}
    assert live["task_seconds"]["total"] >= time.time() - running_since - 0.1
    assert live["makespan"] >= 1.5
    task.cancel()
    task.wait(timeout=30)
    session.close()
    ended = session_summary(session.uid)  # closed: up to its last event (the cancel), not until now
    assert ended["states"] == {"CANCELED": 1} and live["makespan"] <= ended["makespan"]
    time.sleep(1.0)  # (a span in which nothing happens: a summary counting until now would grow by it)
    assert session_summary(session.uid)["makespan"] == ended["makespan"]

