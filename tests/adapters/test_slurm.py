"""Pilots on the real single-host SLURM cluster (16 nodes of 4 CPUs) through psij's slurm executor."""

from __future__ import annotations

import subprocess
import time

import pytest

import scalems_like as sl
from scalems_like import PilotState, TaskState, paths
from tests.adapters.conftest import squeue_state

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm")]


def node_name() -> str:
    import os

    return os.environ["SLURMD_NODENAME"]


def write_override(text: str) -> None:
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "slurm.yaml").write_text(text)


def test_two_node_pilot_runs_tasks_on_both_nodes_and_an_mpi_task_across_them(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=2, runtime=300))
    pilot.wait("ACTIVE", timeout=120)
    nodes = [name for name, _, _ in pilot.nodes]  # two of the cluster's nodes, whichever were free
    assert len(set(nodes)) == 2 and pilot.native_id
    assert squeue_state(pilot.native_id) == "RUNNING"
    report = sl.TaskDescription(executable="/bin/sh", arguments=["-c", "sleep 1; echo $SLURMD_NODENAME"])
    tasks = session.submit_tasks([report] * 16 + [sl.TaskDescription(function=node_name) for _ in range(8)])
    session.wait_tasks(tasks, timeout=120)
    assert {t.stdout for t in tasks[:16]} == {f"{node}\n" for node in nodes}
    assert {t.history[-1][2] for t in tasks} == set(nodes)
    assert all(t.return_value == t.history[-1][2] for t in tasks[16:])
    (mpi,) = session.submit_tasks([sl.TaskDescription(
        executable="/bin/sh", arguments=["-c", "echo $SLURM_PROCID $SLURMD_NODENAME"], ranks=2, cores=4)])
    assert mpi.wait(timeout=60) is TaskState.DONE
    assert sorted(mpi.stdout.splitlines()) == [f"0 {nodes[0]}", f"1 {nodes[1]}"]
    session.close()
    assert pilot.state is PilotState.DONE


def test_rejected_job_reports_sbatch_message(session: sl.Session) -> None:
    with pytest.raises(sl.SubmitError, match="invalid partition specified: nosuchpartition"):
        session.submit_pilot(sl.PilotDescription(resource="slurm", queue="nosuchpartition"))
    (pilot,) = session.pilots  # the refused pilot is not left NEW: it is FAILED with sbatch's message
    assert pilot.state is PilotState.FAILED and "nosuchpartition" in (pilot.failure or "")
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/true")])
    assert task.wait(timeout=10) is TaskState.FAILED and task.reason.startswith("no live pilot to run it")


def test_an_impossible_request_names_what_was_asked_beside_sbatchs_message(session: sl.Session) -> None:
    with pytest.raises(sl.SubmitError) as refused:  # the cluster has 16 nodes
        session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=50, runtime=600))
    message = str(refused.value)
    assert message.startswith("slurm refused the pilot job (nodes=50, cores per node=all (whole nodes), "
                              "runtime=600 s, queue=(the default)): sbatch: error: "), message
    assert "More processors requested than permitted" in message and message == message.strip()


def cluster_nodes() -> int:
    """How many nodes the test cluster has (a job asking for all of them waits while another job runs)."""
    listing = subprocess.run(["sinfo", "-h", "-o", "%D"], capture_output=True, text=True, check=True).stdout
    return sum(int(count) for count in listing.split())  # (a line per state: idle, allocated...)


def test_cancel_queued_and_running_pilots(session: sl.Session) -> None:
    running = session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=4, runtime=300))
    running.wait("ACTIVE", timeout=120)
    queued = session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=cluster_nodes(), runtime=300))
    deadline = time.monotonic() + 30
    while squeue_state(queued.native_id or "") != "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert queued.state is PilotState.SUBMITTED
    queued.cancel()
    assert queued.wait(timeout=60) is PilotState.CANCELED
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"])])
    while task.state is not TaskState.RUNNING:
        assert time.monotonic() < deadline + 30
        time.sleep(0.05)
    running.cancel()
    assert running.wait(timeout=60) is PilotState.CANCELED
    assert task.wait(timeout=10) is TaskState.CANCELED
    deadline = time.monotonic() + 30
    while squeue_state(running.native_id or "") not in ("COMPLETED", "CANCELLED", ""):
        assert time.monotonic() < deadline, "the batch job did not end after the cancel"
        time.sleep(0.2)


def test_cancel_during_the_bootstrap_ends_canceled(session: sl.Session) -> None:
    """scancel's SIGTERM ends the running hook: its failed step is the cancel, not a bootstrap failure."""
    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", runtime=300, pre_bootstrap=["sleep 120"]))
    deadline = time.monotonic() + 60
    while pilot.bootstrap_step != "hooks":
        assert time.monotonic() < deadline, f"the hook did not start: {pilot.state}"
        time.sleep(0.1)
    pilot.cancel()
    assert pilot.wait(timeout=60) is PilotState.CANCELED
    deadline = time.monotonic() + 30
    while squeue_state(pilot.native_id or "") not in ("CANCELLED", ""):
        assert time.monotonic() < deadline, "the batch job was not canceled"
        time.sleep(0.2)


def test_job_canceled_outside_the_session(session: sl.Session) -> None:
    import subprocess

    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", runtime=300))
    pilot.wait("ACTIVE", timeout=120)
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"])])
    subprocess.run(["scancel", pilot.native_id or ""], check=True)
    assert pilot.wait(timeout=60) is PilotState.FAILED
    assert pilot.failure.startswith("the agent received SIGTERM: its batch job was canceled (scancel, qdel)")
    assert task.wait(timeout=10) is TaskState.FAILED


def test_agent_that_never_connects_fails_the_pilot_and_its_job(session: sl.Session) -> None:
    write_override("agent_connect_timeout: 3\n")
    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", pre_bootstrap=["sleep 120"]))
    assert pilot.wait(timeout=60) is PilotState.FAILED
    assert pilot.failure == ("the batch job runs but its agent did not connect within 3 s "
                             "(last bootstrap step: hooks)")
    deadline = time.monotonic() + 30
    while squeue_state(pilot.native_id or "") not in ("CANCELLED", ""):
        assert time.monotonic() < deadline, "the batch job was not canceled"
        time.sleep(0.2)


def test_pilot_reaching_its_walltime(session: sl.Session) -> None:
    """SLURM walltimes are whole minutes: the agent ends the pilot shortly before SLURM would kill it."""
    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=1, runtime=60))
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"])])
    assert pilot.wait(timeout=120) is PilotState.DONE
    assert task.wait(timeout=10) is TaskState.FAILED
    assert task.reason == "pilot runtime of 60 s ended while the task ran"
