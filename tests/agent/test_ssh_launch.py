"""The ``ssh`` launch method against a real sshd on 127.0.0.1 (tests/cluster/sshd.sh, started by tests/run.sh).

The allocation is two "nodes" named in a PBS_NODEFILE: this host (its node manager forked) and ``localhost`` (its
node manager started over ssh); each manager forks its node's workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import TaskState, paths
from scalems_like.agent.launch import ssh_script
from scalems_like.agent.nodes import Node
from tests.processes import wait_until

SSHD = Path(__file__).resolve().parent.parent / "cluster" / "sshd.sh"


@pytest.fixture
def ssh_resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if subprocess.run(["sh", str(SSHD), "status"]).returncode != 0:
        pytest.skip(f"no test sshd running (start it as root: sh {SSHD} start)")
    command = subprocess.run(["sh", str(SSHD), "command"], capture_output=True, text=True, check=True).stdout
    nodefile = tmp_path / "nodefile"
    nodefile.write_text(f"{socket.gethostname()}\nlocalhost\n")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))  # the pilot job inherits it: a 2-node allocation
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True)
    (directory / "sshtest.yaml").write_text(f"launch_method: ssh\nssh_command: {command.strip()!r}\n")
    return "sshtest"


def test_workers_on_a_second_node_started_over_ssh(session: sl.Session, ssh_resource: str) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(resource=ssh_resource, cores=2, runtime=120))
    pilot.wait("ACTIVE", timeout=60)
    assert [name for name, _, _ in pilot.nodes] == [socket.gethostname(), "localhost"]
    report = sl.TaskDescription(executable="/bin/sh", arguments=["-c", "sleep 1; echo $SCALEMS_NODE"])
    tasks = session.submit_tasks([report] * 8)
    session.wait_tasks(tasks, timeout=60)
    assert {t.state for t in tasks} == {TaskState.DONE}
    assert {t.stdout for t in tasks} == {f"{socket.gethostname()}\n", "localhost\n"}
    assert {t.history[-1][2] for t in tasks} == {socket.gethostname(), "localhost"}


def test_ssh_script_forwards_the_environment_and_runs_the_node_manager() -> None:
    script = ssh_script(Node("n2", 2, 0), "p.worker.n0001", 2, "tcp://n1:5000", Path("/sb/workers"),
                        {"PATH": "/usr/bin", "SCALEMS_HEARTBEAT_INTERVAL": "1.0", "HOME": "/root"})
    assert script.endswith("-m scalems_like.overlay.node_manager tcp://n1:5000 p.worker.n0001 2 /sb/workers")
    assert "SCALEMS_NODE=n2" in script and "PATH=/usr/bin" in script and "HOME=" not in script
    assert " exec " in script  # ssh's own process is the manager's: its end is the manager's end


def worker_pid(session: sl.Session, uid: str) -> int:
    """The pid of worker ``uid``, as its node manager reported it (the profile's worker start event)."""
    (detail,) = [str(row["detail"]) for row in session.profile(frame=False)
                 if row["component"] == "worker" and row["event"] == "start" and row["uid"] == uid]
    return int(detail.removeprefix("pid "))


def test_a_worker_lost_on_an_ssh_node_is_replaced_there_over_ssh(session: sl.Session, ssh_resource: str) -> None:
    """A worker SIGKILLed on the second node (the agent sees no process of its own end: the node's ssh runs on with
    its manager) is reported by that node's manager at once, with its signal, and the manager forks a new one
    there."""
    resource = paths.user_config_dir() / "resources" / f"{ssh_resource}.yaml"
    resource.write_text(resource.read_text() + "heartbeat_interval: 0.5\nheartbeat_timeout: 2\n")
    pilot = session.submit_pilot(sl.PilotDescription(resource=ssh_resource, cores=2, runtime=120))
    pilot.wait("ACTIVE", timeout=60)
    victim = f"{pilot.uid}.worker.n0001.w0000"

    def started(where: str) -> list[str]:
        return [str(row["uid"]) for row in session.profile(frame=False)
                if row["component"] == "worker" and row["event"] == "start" and row["where"] == where]

    wait_until(lambda: victim in started("localhost"), what="the remote worker's hello")
    os.kill(worker_pid(session, victim), signal.SIGKILL)
    replacement = f"{pilot.uid}.worker.n0001.r0001"
    wait_until(lambda: replacement in started("localhost"), timeout=30, what="a replacement on localhost")
    (lost,) = [row for row in session.profile(frame=False) if row["event"] == "lost"]
    assert lost["uid"] == victim and lost["detail"] == "killed by signal 9 (SIGKILL; out of memory?)"
    report = sl.TaskDescription(executable="/bin/sh", arguments=["-c", "sleep 0.5; echo $SCALEMS_NODE"])
    tasks = session.submit_tasks([report] * 8)
    session.wait_tasks(tasks, timeout=60)
    assert {t.state for t in tasks} == {TaskState.DONE}
    assert "localhost\n" in {t.stdout for t in tasks} and pilot.state is sl.PilotState.ACTIVE
