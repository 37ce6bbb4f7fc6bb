"""Faults with real signals: a client killed with SIGKILL; a worker killed under a running task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import scalems_like as sl
from scalems_like import TaskState, protocol
from tests.processes import alive, children, processes, wait_until

CLIENT = textwrap.dedent("""
    import sys, time
    import scalems_like as sl
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=300))
    pilot.wait("ACTIVE", timeout=60)
    session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["299.5"])])
    time.sleep(1)
    print(pilot.agent_pid, flush=True)
    print(pilot.sandbox, flush=True)
    time.sleep(600)
""")




def test_agent_and_workers_stop_when_the_client_is_gone_past_its_grace_period(isolated_dirs: Path) -> None:
    """The agent outlives a killed client (for a reattach) only for the resource's ``client_grace_period``."""
    resources = isolated_dirs / "config" / "resources"
    resources.mkdir(parents=True)
    (resources / "local.yaml").write_text("client_grace_period: 3\n")
    client = subprocess.Popen([sys.executable, "-c", CLIENT], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    agent = int(client.stdout.readline())
    workers = children(agent)
    assert len(workers) == 2 and alive(agent)
    (sleeper,) = processes("/bin/sleep 299.5")
    sandbox = Path(client.stdout.readline().strip())
    client.kill()
    client.wait()
    killed = time.monotonic()
    time.sleep(1)
    assert alive(agent), "the agent did not wait for a client to reattach"
    deadline = killed + 30
    while (alive(agent) or any(map(alive, workers))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(agent), "the agent outlived its client's grace period"
    assert time.monotonic() - killed < 3 + 10, "the agent stopped long after its grace period (3 s)"
    assert not any(map(alive, workers)), "a worker outlived its agent"
    assert not alive(sleeper[0]), "the task outlived its agent"
    stopped = json.loads((sandbox / "agent.stopped").read_text())
    assert stopped["state"] == "FAILED" and "(client grace period 3 s)" in stopped["reason"]


def _parent_of_command(*argv: str) -> int:
    ((_, parent),) = processes(" ".join(argv))
    return parent


def test_killed_worker_fails_its_task_and_the_pilot_goes_on(session: sl.Session, local_pilot: sl.Pilot) -> None:
    token = 2000 + os.getpid() % 1000  # sleeps no other test runs
    doomed, other = session.submit_tasks([
        sl.TaskDescription(executable="/bin/sleep", arguments=[str(token)]),
        sl.TaskDescription(executable="/bin/sleep", arguments=[str(token + 1)]),
    ])
    deadline = time.monotonic() + 30
    while not (doomed.state is TaskState.RUNNING and other.state is TaskState.RUNNING):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(_parent_of_command("/bin/sleep", str(token)), signal.SIGKILL)  # the worker running `doomed`
    assert doomed.wait(timeout=30) is TaskState.FAILED
    assert doomed.reason.startswith("worker died while running it: killed by signal 9 (SIGKILL; out of memory?)")
    deadline = time.monotonic() + 10
    while processes(f"/bin/sleep {token}"):  # the agent killed the orphaned task
        assert time.monotonic() < deadline, "the task of the killed worker still runs"
        time.sleep(0.05)
    assert other.state is TaskState.RUNNING
    other.cancel()
    assert other.wait(timeout=30) is TaskState.CANCELED
    (after,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-5,))])
    assert after.result(timeout=60) == 5  # the pilot goes on with its other worker
    assert local_pilot.state is sl.PilotState.ACTIVE


def test_killed_worker_task_with_retries_runs_again(session: sl.Session, local_pilot: sl.Pilot) -> None:
    token = str(3000 + os.getpid() % 1000)
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=[token], retries=1)])
    deadline = time.monotonic() + 30
    while task.state is not TaskState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(_parent_of_command("/bin/sleep", token), signal.SIGKILL)
    while task.attempt != 1 or task.state is not TaskState.RUNNING:
        assert time.monotonic() < deadline + 30
        time.sleep(0.05)
    assert "retry 1 of 1 after: worker" in (task.reason or "")
    task.cancel()
    assert task.wait(timeout=30) is TaskState.CANCELED


def test_an_agent_of_another_protocol_version_fails_its_pilot_with_that_reason(session: sl.Session,
                                                                                tmp_path: Path) -> None:
    """The agent's interpreter is this one with a sitecustomize that makes it speak protocol version 1."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import scalems_like.protocol.messages as m\nm.PROTOCOL_VERSION = 1\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=60,
                                                     environment={"python": str(python), "mode": "use"}))
    assert pilot.wait(timeout=60) is sl.PilotState.FAILED
    assert pilot.failure == (f"its agent cannot talk to this client: peer speaks protocol version 1, this side "
                             f"speaks {protocol.PROTOCOL_VERSION}: install the same scalems_like version on both sides")


def running_sleep(session: sl.Session, token: str, **fields: object) -> tuple[sl.Task, int]:
    """A ``/bin/sleep TOKEN`` task, RUNNING, and the pid of its process."""
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=[token], **fields)])
    wait_until(lambda: task.state is TaskState.RUNNING, timeout=30, what="the sleep task running")
    wait_until(lambda: bool(processes(f"/bin/sleep {token}")), timeout=10, what="its process")
    ((sleeper, _worker),) = processes(f"/bin/sleep {token}")
    return task, sleeper


def test_a_task_signaled_just_before_its_agent_is_interrupted_by_the_pilots_end(session: sl.Session,
                                                                                local_pilot: sl.Pilot) -> None:
    """As when a batch system ends the job (scancel, walltime): every process gets SIGTERM, the task's often
    first. The task ends with the pilot's reason, marked interrupted (a resume runs it again if idempotent)."""
    task, sleeper = running_sleep(session, str(4000 + os.getpid() % 1000), idempotent=True)
    os.kill(sleeper, signal.SIGTERM)
    wait_until(lambda: not alive(sleeper), timeout=10,  # (its worker reaps it and reports at once: the agent
               what="the task's process ended")          # hears of it before its own SIGTERM below)
    assert local_pilot.agent_pid is not None
    os.kill(local_pilot.agent_pid, signal.SIGTERM)
    assert task.wait(timeout=30) is TaskState.FAILED
    assert task.interrupted == "running", task.reason
    assert (task.reason or "").startswith("the agent received SIGTERM"), task.reason
    assert local_pilot.wait(timeout=30) is sl.PilotState.FAILED


def test_a_task_signaled_alone_ends_killed_by_sigterm(session: sl.Session, local_pilot: sl.Pilot) -> None:
    task, sleeper = running_sleep(session, str(5000 + os.getpid() % 1000))
    os.kill(sleeper, signal.SIGTERM)
    assert task.wait(timeout=30) is TaskState.FAILED
    assert task.reason == "killed by signal SIGTERM" and task.exit_code == 143 and task.interrupted is None
    (after,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-2,))])
    assert after.result(timeout=30) == 2 and local_pilot.state is sl.PilotState.ACTIVE
