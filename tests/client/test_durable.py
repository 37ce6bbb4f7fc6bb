"""Durable sessions with real faults: SIGKILL of the client and of the agent, a pilot's runtime running out.

In each: no finished result is lost, no finished task runs again (every task appends to its own marker file, so
a second run shows as a second line), and every task ends in a final state with a reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import scalems_like as sl
from scalems_like import PilotState, TaskState
from scalems_like.cli.main import main as cli
from scalems_like.client.client_lock import SessionInUse
from scalems_like.client.journal import Journal
from scalems_like.protocol.records import read_journal, read_records
from tests.processes import alive, processes, wait_until

CLIENT = textwrap.dedent("""
    import sys
    import time
    import scalems_like as sl
    marks = sys.argv[1]
    session = sl.Session()
    session.submit_pilot(sl.PilotDescription(cores=2, runtime=300))
    tasks = session.submit_tasks(
        [sl.TaskDescription(executable="/bin/sh", arguments=["-c", f"echo run >> {marks}/{i}; sleep 1; echo out {i}"])
         for i in range(6)]
        + [sl.TaskDescription(function=pow, args=(2, i)) for i in range(20)])
    tasks[0].wait(timeout=120)
    print(session.uid, flush=True)
    time.sleep(600)
""")


def marker_lines(marks: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in marks.iterdir()}


def test_client_killed_then_reattach_collects_what_finished_meanwhile(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(marks)], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    uid = client.stdout.readline().strip()
    # the client lives: another client is refused at once and changes nothing (the agent serves one client)
    with pytest.raises(SessionInUse, match=f"session {uid} is in use by a live client: process {client.pid} on "):
        sl.Session.reattach(uid)
    assert cli(["resume", uid]) == 1
    client.kill()  # SIGKILL: no close, no journal flush beyond what was committed
    client.wait()
    (pilot_sandbox,) = (Path(os.environ["SCALEMS_LIKE_DATA_DIR"]) / "sandbox" / uid).glob("pilot.*")
    journal = pilot_sandbox / "agent.journal"
    wait_until(lambda: sum(u["state"] == "DONE" for u in read_records(journal)) == 26, timeout=60,
               what="every task finished by the agent while no client listened")
    session = sl.Session.reattach(uid)
    try:
        tasks = session.tasks
        assert len(tasks) == 26 and all(task.state is TaskState.DONE for task in tasks)  # in hand at once
        assert [task.stdout for task in tasks[:6]] == [f"out {i}\n" for i in range(6)]
        assert [task.return_value for task in tasks[6:]] == [2 ** i for i in range(20)]
        (pilot,) = session.pilots
        assert pilot.state is PilotState.ACTIVE
        (more,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-7,))])
        assert more.result(timeout=60) == 7  # the agent follows the new client
    finally:
        session.close()
    assert pilot.state is PilotState.DONE
    assert marker_lines(marks) == {str(i): 1 for i in range(6)}  # nothing ran twice
    assert cli(["sessions", "--json"]) == 0
    # the profile: every agent event once (those sent while no client listened from the agent's journal), every
    # bootstrap step once (the reattached client read the bootstrap's file again from its start)
    journal_events = read_journal(journal)[1]
    reader = Journal.open(uid)
    rows = reader.profile()
    reader.close()
    agent_rows = [(when, component, where, event, task, detail)
                  for when, clock, component, where, event, task, _name, detail in rows
                  if clock == pilot.uid and component not in ("bootstrap", "agent", "pilot", "readiness")]
    assert sorted(agent_rows) == sorted(tuple(event) for event in journal_events)
    steps = [(when, name, event) for when, _clock, component, _where, event, _uid, name, _detail in rows
             if component == "bootstrap"]
    assert len(steps) == len(set(steps)) and {(name, event) for _when, name, event in steps} >= {
        ("environment", "started"), ("environment", "done"), ("agent", "started")}


LONE_TASK = textwrap.dedent("""
    import sys
    import time
    import scalems_like as sl
    session = sl.Session()
    session.submit_pilot(sl.PilotDescription(cores=2, runtime=300))
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=[sys.argv[1]])])
    while task.state is not sl.TaskState.RUNNING:
        time.sleep(0.05)
    print(session.uid, flush=True)
    time.sleep(600)
""")


def test_agent_events_while_no_client_listened_reach_the_reattached_profile(tmp_path: Path) -> None:
    """A worker killed while no client is attached: the agent's "lost" event (sent to nobody) is in the profile
    of the reattached session, once; its task ended FAILED with the reason."""
    token = str(3000 + os.getpid() % 1000)  # a sleep no other test runs
    client = subprocess.Popen([sys.executable, "-c", LONE_TASK, token], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    uid = client.stdout.readline().strip()
    client.kill()
    client.wait()
    ((_sleep, worker),) = processes(f"/bin/sleep {token}")
    os.kill(worker, signal.SIGKILL)
    (sandbox,) = (Path(os.environ["SCALEMS_LIKE_DATA_DIR"]) / "sandbox" / uid).glob("pilot.*")
    wait_until(lambda: any(event[3] == "lost" for event in read_journal(sandbox / "agent.journal")[1]),
               timeout=30, what="the agent journaled the lost worker")
    session = sl.Session.reattach(uid)
    try:
        (task,) = session.tasks
        assert task.state is TaskState.FAILED
        assert "worker died while running it: killed by signal 9" in (task.reason or "")
    finally:
        session.close()
    reader = Journal.open(uid)
    rows = reader.profile()
    reader.close()
    lost = [row for row in rows if row[2] == "worker" and row[4] == "lost"]
    assert len(lost) == 1 and lost[0][1] == "pilot.0000" and "signal 9 (SIGKILL" in lost[0][7], lost
    stops = [row for row in rows if row[2] == "worker" and row[4] == "stop"]
    assert len(stops) >= 1  # (sent over the socket to the reattached client)


def test_agent_that_ended_while_detached_leaves_its_last_events_to_the_profile() -> None:
    """The pilot's runtime ends while no client is attached: the reattached session's profile has each worker's
    start (received live) and stop (sent to nobody, read from the agent's journal) exactly once."""
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=6))
    pilot.wait("ACTIVE", timeout=60)
    wait_until(lambda: sum(row["event"] == "start" for row in session.profile(frame=False)
                           if row["component"] == "worker") == 2, timeout=30, what="both workers' start recorded")
    uid, sandbox = session.uid, pilot.sandbox
    session.detach()
    wait_until(lambda: (sandbox / "agent.stopped").exists(), timeout=60, what="the agent ended by its runtime")
    with sl.Session.reattach(uid) as again:
        (pilot,) = again.pilots
        assert pilot.state is PilotState.DONE
    reader = Journal.open(uid)
    rows = reader.profile()
    reader.close()
    workers = sorted((row[4], row[5]) for row in rows if row[2] == "worker")
    assert workers == [("start", "pilot.0000.worker.n0000.w0000"), ("start", "pilot.0000.worker.n0000.w0001"),
                       ("stop", "pilot.0000.worker.n0000.w0000"), ("stop", "pilot.0000.worker.n0000.w0001")], workers


def test_sessions_lists_state_and_counts(capsys) -> None:  # type: ignore[no-untyped-def]
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
        session.wait_tasks(session.submit_tasks([sl.TaskDescription(executable="/bin/true") for _ in range(3)]
                                                + [sl.TaskDescription(executable="/bin/false")]), timeout=60)
    capsys.readouterr()
    assert cli(["ls", "--json"]) == 0
    (row,) = [row for row in json.loads(capsys.readouterr().out) if row["session"] == session.uid]
    assert row["state"] == "FAILED" and row["tasks"] == {"DONE": 3, "FAILED": 1}  # closed, a task not DONE
    assert [(pilot["pilot"], pilot["state"]) for pilot in row["pilots"]] == [("pilot.0000", "DONE")]


def test_agent_killed_then_resume_runs_only_what_did_not_finish(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()

    def marked(name: str, seconds: float, **fields: object) -> sl.TaskDescription:
        return sl.TaskDescription(executable="/bin/sh", arguments=["-c", f"echo run >> {marks}/{name}; "
                                                                   f"sleep {seconds}"], **fields)
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(cores=3, runtime=300))
    quick = session.submit_tasks([marked(f"quick{i}", 0) for i in range(4)])
    session.wait_tasks(quick, timeout=60)
    stubborn, idempotent, retried = session.submit_tasks([
        marked("stubborn", 60), marked("idempotent", 60, idempotent=True), marked("retried", 60, retries=1)])
    wait_until(lambda: len(list(marks.iterdir())) == 7, what="the three long tasks started")
    uid, agent = session.uid, pilot.agent_pid
    assert agent is not None
    session.detach()  # the client goes away (as if killed); then the agent dies with its node
    os.kill(agent, signal.SIGKILL)
    wait_until(lambda: not alive(agent))
    resumed = sl.Session.resume(uid)
    try:
        tasks = {task.uid: task for task in resumed.tasks}
        resumed.wait_tasks(timeout=120)
        assert all(tasks[task.uid].state is TaskState.DONE for task in quick)
        assert tasks[stubborn.uid].state is TaskState.FAILED
        assert tasks[stubborn.uid].reason.startswith(
            f"pilot pilot.0000 ended FAILED: its agent (process {agent} on {socket.gethostname()}) ended while no "
            "client was attached")  # (known at once: its pid is gone from this host)
        assert tasks[idempotent.uid].state is TaskState.DONE and tasks[retried.uid].state is TaskState.DONE
        assert tasks[retried.uid].attempt == 1
        old, new = resumed.pilots
        assert old.state is PilotState.FAILED and tasks[idempotent.uid].pilot == new.uid
    finally:
        resumed.close()
    lines = marker_lines(marks)
    assert lines == {**{f"quick{i}": 1 for i in range(4)}, "stubborn": 1, "idempotent": 2, "retried": 2}


def test_runtime_end_with_tasks_queued_then_resume(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    session = sl.Session()
    with session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=6))
        first, long, queued = session.submit_tasks([
            sl.TaskDescription(executable="/bin/sh", arguments=["-c", f"echo run >> {marks}/first"]),
            sl.TaskDescription(executable="/bin/sleep", arguments=["60"]),
            sl.TaskDescription(executable="/bin/sh", arguments=["-c", f"echo run >> {marks}/queued"]),
        ])
        assert pilot.wait(timeout=60) is PilotState.DONE
        assert first.state is TaskState.DONE
        assert long.state is TaskState.FAILED and long.interrupted == "running"
        assert queued.state is TaskState.FAILED and queued.interrupted == "queued"
    resumed = sl.Session.resume(session.uid)
    try:
        again = {task.uid: task for task in resumed.tasks}
        resumed.wait_tasks(timeout=120)
        assert again[first.uid].state is TaskState.DONE and again[queued.uid].state is TaskState.DONE
        assert again[long.uid].state is TaskState.FAILED  # it had started, is not idempotent, has no retries
        assert again[long.uid].reason == long.reason
    finally:
        resumed.close()
    assert marker_lines(marks) == {"first": 1, "queued": 1}


def test_a_pilots_final_row_goes_to_the_journal_after_its_tasks_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal commits in the order rows were queued (one transaction per batch): a client killed at any
    moment leaves its tasks' ends in the journal whenever the journal has their pilot's end."""
    order: list[tuple[str, str]] = []
    save_pilot, add_updates = Journal.save_pilot, Journal.add_updates

    def saving(journal: Journal, row: tuple[Any, ...]) -> None:
        order.append((row[0], row[5]))
        save_pilot(journal, row)  # type: ignore[arg-type]

    def adding(journal: Journal, updates: list[dict[str, Any]]) -> None:
        order.extend((update["uid"], update["state"]) for update in updates)
        add_updates(journal, updates)
    monkeypatch.setattr(Journal, "save_pilot", saving)
    monkeypatch.setattr(Journal, "add_updates", adding)
    running = threading.Event()
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
        (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["60"])])
        task.add_callback(lambda _task, state: running.set() if state is TaskState.RUNNING else None)
        assert running.wait(60)
        assert pilot.agent_pid is not None
        os.kill(pilot.agent_pid, signal.SIGKILL)
        assert pilot.wait(timeout=60) is PilotState.FAILED
        assert task.state is TaskState.FAILED and task.interrupted == "running"
    assert order.index((task.uid, "FAILED")) < order.index((pilot.uid, "FAILED"))
