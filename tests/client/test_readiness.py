"""Readiness: how much of a pilot serves (``Pilot.ready_cores``, ``Pilot.wait_ready``), and nodes that never join.

The nodes that never join are real second nodes of a 2-node allocation (a PBS_NODEFILE naming this host and a
node that does not exist, as tests/agent/test_ssh_launch.py does) whose ``ssh`` launcher is a stand-in that hangs
or fails, printing why: what a real ``ssh`` to an unreachable node does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import TaskState, paths
from scalems_like.cli.main import main
from scalems_like.protocol.records import read_readiness
from tests.client.test_faults import live_workers
from tests.processes import processes, wait_until


def readiness_rows(session: sl.Session) -> list[str]:
    """The pilot's ``ready/total`` cores over time, as the client heard them (the session's profile)."""
    return [str(row["detail"]) for row in session.profile(frame=False) if row["component"] == "readiness"]


def test_a_local_pilot_is_ready_when_every_core_serves(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=120))
    assert pilot.ready_cores == 0
    assert pilot.wait_ready(timeout=60) == 2
    assert pilot.ready_cores == 2
    ((name, node),) = pilot.readiness.items()
    assert node == (name, 2, 2, None)
    assert readiness_rows(session)[-1] == "2/2"
    with pytest.raises(sl.ConfigError, match=r"Pilot.wait_ready: cores = 3: pilot pilot\.\S+ has 2 cores"):
        pilot.wait_ready(cores=3)
    with pytest.raises(sl.ConfigError, match=r"cores = 0: expected a number of cores >= 1"):
        pilot.wait_ready(cores=0)
    pilot.cancel()
    pilot.wait(timeout=30)
    assert pilot.ready_cores == 0
    with pytest.raises(sl.PilotFailed, match="canceled by the user"):
        pilot.wait_ready(timeout=10)


def test_a_killed_worker_takes_its_core_away_until_it_is_replaced(session: sl.Session,
                                                                  local_pilot: sl.Pilot) -> None:
    assert local_pilot.wait_ready(timeout=60) == 2
    before = len(readiness_rows(session))
    doomed = live_workers(local_pilot)[0]
    os.kill(doomed, signal.SIGKILL)
    wait_until(lambda: "1/2" in readiness_rows(session)[before:], what="the client told of the lost core")
    assert local_pilot.wait_ready(timeout=30) == 2  # the replacement said hello
    assert doomed not in live_workers(local_pilot)
    heard = readiness_rows(session)
    assert heard[before - 1:] == ["2/2", "1/2", "2/2"], heard
    journaled = read_readiness(local_pilot.sandbox / "agent.journal")
    assert [entry[1:] for entry in journaled.values()] == [[2, 2, ""]]


def test_wait_ready_times_out_saying_how_many_cores_are_up(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=120))
    with pytest.raises(sl.WaitTimeout, match=r"timed out after 0\.01 s: pilot pilot\.\S+ is (NEW|SUBMITTED|"
                                             r"BOOTSTRAPPING), its agent has not reported its nodes yet"):
        pilot.wait_ready(timeout=0.01)
    pilot.wait_ready(timeout=60)


@pytest.fixture
def unreachable_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A 2-node allocation: this host and ``n-unreachable.invalid``, whose ``ssh`` launcher the test sets."""
    nodefile = tmp_path / "nodefile"
    nodefile.write_text(f"{socket.gethostname()}\nn-unreachable.invalid\n")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))  # the pilot job inherits it
    (paths.user_config_dir() / "resources").mkdir(parents=True)
    return "n-unreachable.invalid"


def ssh_resource(launcher: str, join_timeout: float) -> str:
    (paths.user_config_dir() / "resources" / "twonodes.yaml").write_text(
        f"launch_method: ssh\nssh_command: {json.dumps(launcher)}\nnode_join_timeout: {join_timeout}\n")
    return "twonodes"


def test_a_node_whose_launcher_hangs_is_reported_after_node_join_timeout(session: sl.Session, unreachable_node: str,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    token = str(7000 + os.getpid() % 1000)  # the hanging launcher's sleep, unique to this run
    resource = ssh_resource(f"sh -c 'echo \"ssh: connect to host $0 port 22: Connection timed out\"; "
                            f"exec sleep {token}'", join_timeout=3)
    pilot = session.submit_pilot(sl.PilotDescription(resource=resource, cores=2, runtime=120))
    assert pilot.wait_ready(cores=2, timeout=60) == 2  # the first node serves
    with pytest.raises(sl.PilotDegraded) as raised:
        pilot.wait_ready(timeout=60)
    out = pilot.readiness[unreachable_node].out or ""
    assert out.startswith("none of its workers said hello within 3 s (node_join_timeout); its launcher (pid ")
    assert "still runs; its output " in out and out.endswith(
        f"ends with:\nssh: connect to host {unreachable_node} port 22: Connection timed out"), out
    assert raised.value.reason.startswith("4 cores can no longer be ready: 2 of 4 cores ready on 1 of 2 nodes; "
                                          f"node {unreachable_node} out of the schedule: none of its workers")
    wait_until(lambda: not processes(f"sleep {token}"), timeout=10, what="the hung launcher killed")
    tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/echo", arguments=[str(n)]) for n in range(8)])
    session.wait_tasks(tasks, timeout=60)
    assert {task.state for task in tasks} == {TaskState.DONE}
    assert pilot.state is sl.PilotState.ACTIVE and pilot.ready_cores == 2
    assert main(["status", session.uid, "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)["pilots"]
    assert status["nodes_out"] == {unreachable_node: out}
    assert (status["ready_cores"], status["cores"], status["nodes_ready"], status["nodes"]) == (2, 4, 1, 2)


def test_a_node_whose_launcher_fails_is_taken_out_with_its_output(session: sl.Session, unreachable_node: str) -> None:
    resource = ssh_resource("sh -c 'echo \"ssh: Could not resolve hostname $0\" >&2; exit 255'", join_timeout=60)
    pilot = session.submit_pilot(sl.PilotDescription(resource=resource, cores=2, runtime=120))
    manager = f"{pilot.uid}.worker.n0001"
    with pytest.raises(sl.PilotDegraded, match=f"node {unreachable_node} out of the schedule: its node manager "
                                               f"{manager} exited with code 255 before it said hello"):
        pilot.wait_ready(timeout=60)  # (long before the node_join_timeout: the launch fails at once)
    out = pilot.readiness[unreachable_node].out or ""
    assert "before it said hello; its launcher (pid " in out and "ended with code 255" in out, out
    assert out.endswith(f"ends with:\nssh: Could not resolve hostname {unreachable_node}"), out
    (task,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-3,))])
    assert task.result(timeout=60) == 3 and pilot.state is sl.PilotState.ACTIVE


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
@pytest.mark.timeout(240)
def test_after_wait_ready_both_slurm_nodes_serve(session: sl.Session) -> None:
    """Before: the second node's workers said hello after 200 short tasks had all run on the first."""
    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=2, runtime=300))
    assert pilot.wait_ready(timeout=150) == 8, "queued behind other jobs? (squeue)"
    ready = {name: node.ready_cores for name, node in pilot.readiness.items()}  # two nodes, whichever were free
    assert len(ready) == 2 and set(ready.values()) == {4}, ready
    report = sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo $SLURMD_NODENAME"])
    tasks = session.submit_tasks([report] * 16)
    session.wait_tasks(tasks, timeout=120)
    assert {t.state for t in tasks} == {TaskState.DONE}
    assert {t.stdout for t in tasks} == {f"{name}\n" for name in ready}
