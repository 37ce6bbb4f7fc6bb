"""A 16-node pilot on the test SLURM cluster (16 fake nodes of 4 cores): one node manager per node.

Every node serves after ``wait_ready()``; the agent holds one connection per node (16), not one per worker (64);
``kill -9`` of one node's manager loses only that node: its running tasks are retried on the others, the pilot goes
on with 15 nodes.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import TaskState
from scalems_like.protocol.records import read_journal
from tests.processes import wait_until

NODES = 16


def established_to(port: int) -> int:
    """TCP connections in ESTABLISHED state whose local port is ``port`` (the server's side), on this host."""
    count = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


def manager_port(sandbox: Path) -> int:
    """The port the agent's node managers connect to (its log says it)."""
    match = re.search(r"workers connect to tcp://[^:]+:(\d+)", (sandbox / "agent.log").read_text())
    assert match, "the agent log does not say where its node managers connect"
    return int(match.group(1))


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
@pytest.mark.timeout(600)
def test_sixteen_nodes_serve_through_one_connection_each_and_one_lost_node_loses_only_its_tasks(
        session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=NODES, runtime=480))
    assert pilot.wait_ready(timeout=300) == NODES * 4, "queued behind other jobs? (squeue)"
    assert len(pilot.readiness) == NODES and {node.ready_cores for node in pilot.readiness.values()} == {4}
    assert established_to(manager_port(pilot.sandbox)) == NODES  # one per node, not one per worker

    report = sl.TaskDescription(executable="/bin/sh", arguments=["-c", "sleep 0.3; echo $SLURMD_NODENAME"])
    tasks = session.submit_tasks([report] * (NODES * 4))
    session.wait_tasks(tasks, timeout=180)
    assert {t.state for t in tasks} == {TaskState.DONE}
    assert {t.stdout for t in tasks} == {f"{name}\n" for name in pilot.readiness}  # every node ran some

    joins = {str(row["where"]): int(str(row["detail"]).split()[1]) for row in session.profile(frame=False)
             if row["component"] == "node" and row["event"] == "join"}
    assert len(joins) == NODES
    victim = sorted(joins)[-1]
    long = sl.TaskDescription(executable="/bin/sh", arguments=["-c", "sleep 4; echo $SLURMD_NODENAME"], retries=1)
    tasks = session.submit_tasks([long] * (NODES * 4))
    wait_until(lambda: sum(task.state is TaskState.RUNNING for task in tasks) == NODES * 4, timeout=120,
               what="every core running a task")
    os.kill(joins[victim], signal.SIGKILL)  # the node manager of one node (every fake node is this host)
    session.wait_tasks(tasks, timeout=240)
    assert {t.state for t in tasks} == {TaskState.DONE}, {t.reason for t in tasks if t.state is not TaskState.DONE}
    retried = [t for t in tasks if t.attempt == 1]
    assert len(retried) == 4, [t.reason for t in retried]  # the lost node's four, and only those
    reasons = {str(update.get("reason")) for update in read_journal(pilot.sandbox / "agent.journal")[0]
               if update["uid"] in {t.uid for t in retried} and update["state"] == "QUEUED" and update.get("reason")}
    assert len(reasons) == 4, reasons
    assert all(f"node {victim} is out of the schedule: node lost: " in reason for reason in reasons), reasons
    assert {t.stdout for t in retried} <= {f"{name}\n" for name in pilot.readiness if name != victim}
    assert pilot.state is sl.PilotState.ACTIVE and pilot.ready_cores == (NODES - 1) * 4
    assert pilot.readiness[victim].out and "node lost" in pilot.readiness[victim].out
