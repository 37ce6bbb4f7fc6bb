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

import pytest

import scalems_like as sl
from scalems_like import TaskState, protocol
from scalems_like.cli.main import main
from scalems_like.protocol.records import read_journal
from tests.processes import alive, processes, wait_until, worker_processes

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
    workers = worker_processes(agent)
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


# -- workers that heal: a worker that dies is replaced, its task ends saying why -----------------------------------
def exit_three() -> None:
    os._exit(3)


def kill_own_worker_once(marker: str) -> str:
    """SIGKILL the worker running this (a crash, the OOM killer) on the first attempt; return on the next."""
    if not os.path.exists(marker):
        Path(marker).write_text("")
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def note_pid_and_sleep(path: str, seconds: float) -> int:
    """Write the worker's pid to ``path`` (the first attempt only), then sleep: a task to be killed from outside."""
    if os.path.exists(path):
        return 0
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return 1


def eat_memory_until_refused() -> None:
    """Allocate 16 MiB blocks until the address space limit refuses one, then end as the kernel's OOM killer
    ends a process: SIGKILL.

    The limit (RLIMIT_AS, the soft one only, 256 MiB above what the worker maps now) stands in for the node's
    memory: a real OOM kill on this shared machine would risk every process on it, and a memory cgroup of our own
    is not something a test may set up here. What the agent sees is the same: its worker ended by SIGKILL."""
    import resource

    mapped = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmSize:"))
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (mapped + 256 * 1024 * 1024, hard))
    blocks = []
    try:
        while True:
            blocks.append(bytearray(16 * 1024 * 1024))
    except MemoryError:
        os.kill(os.getpid(), signal.SIGKILL)


def worker_events(session: sl.Session, event: str) -> list[dict[str, object]]:
    return [row for row in session.profile(frame=False) if row["component"] == "worker" and row["event"] == event]


def live_workers(pilot: sl.Pilot) -> list[int]:
    assert pilot.agent_pid is not None
    return [pid for pid in worker_processes(pilot.agent_pid) if alive(pid)]


def test_functions_that_exit_fail_alone_and_the_pilot_runs_the_next_tasks(session: sl.Session,
                                                                          local_pilot: sl.Pilot) -> None:
    """Two os._exit(3) on a 2-core pilot end both of its workers; both are replaced and the pilot goes on."""
    doomed = session.submit_tasks([sl.TaskDescription(function=exit_three) for _ in range(2)])
    for task in doomed:
        assert task.wait(timeout=60) is TaskState.FAILED
        assert (task.reason or "").startswith("worker died while running it: exited with code 3"), task.reason
    after = session.submit_tasks([sl.TaskDescription(function=abs, args=(-number,)) for number in range(20)])
    assert [task.result(timeout=60) for task in after] == list(range(20))
    assert local_pilot.state is sl.PilotState.ACTIVE
    replaced = worker_events(session, "replace")
    assert len(replaced) == 2 and all("exited with code 3" in str(row["detail"]) for row in replaced), replaced


def test_workers_killed_under_their_tasks_more_times_than_there_are_workers(session: sl.Session,
                                                                             local_pilot: sl.Pilot,
                                                                             tmp_path: Path) -> None:
    """Six SIGKILLs of the 2 workers of the pilot, each under a task: with a retry the tasks end DONE, without
    one FAILED naming the signal; no node is taken out (the deaths are the tasks' doing)."""
    retried = session.submit_tasks([sl.TaskDescription(function=kill_own_worker_once, args=(str(tmp_path / str(n)),),
                                                       retries=1) for n in range(4)])
    alone = session.submit_tasks([sl.TaskDescription(function=kill_own_worker_once, args=(str(tmp_path / "x"),)),
                                  sl.TaskDescription(function=kill_own_worker_once, args=(str(tmp_path / "y"),))])
    assert [task.result(timeout=120) for task in retried] == ["survived"] * 4
    assert [task.attempt for task in retried] == [1] * 4
    retries = {update["uid"] for update in read_journal(local_pilot.sandbox / "agent.journal")[0]
               if str(update.get("reason")).startswith(
                   "retry 1 of 1 after: worker died while running it: killed by signal 9 (SIGKILL; out of memory?)")}
    assert retries == {task.uid for task in retried}
    for task in alone:
        assert task.wait(timeout=60) is TaskState.FAILED
        assert (task.reason or "").startswith(
            "worker died while running it: killed by signal 9 (SIGKILL; out of memory?)"), task.reason
    (after,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-4,))])
    assert after.result(timeout=60) == 4 and local_pilot.state is sl.PilotState.ACTIVE
    assert len(worker_events(session, "replace")) == 6
    assert not [row for row in session.profile(frame=False) if row["component"] == "node" and row["event"] == "out"]


def test_a_function_killed_from_outside_is_retried_or_fails_naming_sigkill(session: sl.Session,
                                                                            local_pilot: sl.Pilot,
                                                                            tmp_path: Path) -> None:
    """SIGKILL (as the OOM killer sends it) to the worker running a function, found by the pid it wrote."""
    ended = []
    for retries in (1, 0):
        pid_file = tmp_path / f"pid-{retries}"
        (task,) = session.submit_tasks([sl.TaskDescription(function=note_pid_and_sleep, args=(str(pid_file), 300),
                                                           retries=retries)])
        wait_until(lambda: pid_file.is_file() and pid_file.read_text() != "", what="the task's worker pid")  # noqa: B023
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        ended.append(task)
    retried, alone = ended
    assert retried.result(timeout=60) == 0 and retried.attempt == 1
    assert alone.wait(timeout=60) is TaskState.FAILED
    assert (alone.reason or "").startswith("worker died while running it: killed by signal 9 (SIGKILL;"), alone.reason
    assert local_pilot.state is sl.PilotState.ACTIVE


def test_workers_killed_between_tasks_are_replaced(session: sl.Session, local_pilot: sl.Pilot) -> None:
    """Both idle workers SIGKILLed, twice: replaced each time (within a second of the death in the agent's own
    events), every task after runs DONE; four deaths are below the node's limit of five."""
    for _round in range(2):
        wait_until(lambda: len(live_workers(local_pilot)) == 2, what="two workers")
        doomed = live_workers(local_pilot)
        for pid in doomed:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(set(live_workers(local_pilot)) - set(doomed)) == 2,  # noqa: B023
                   what="two new workers")
    tasks = session.submit_tasks([sl.TaskDescription(function=abs, args=(-number,)) for number in range(50)])
    assert [task.result(timeout=60) for task in tasks] == list(range(50))
    lost, replaced = worker_events(session, "lost"), worker_events(session, "replace")
    assert len(lost) == len(replaced) == 4
    assert all(float(new["time"]) - float(old["time"]) < 1.0 for old, new in zip(lost, replaced, strict=True))
    assert local_pilot.state is sl.PilotState.ACTIVE


def test_a_task_eating_memory_until_killed_fails_alone(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (eater,) = session.submit_tasks([sl.TaskDescription(function=eat_memory_until_refused)])
    assert eater.wait(timeout=60) is TaskState.FAILED
    assert (eater.reason or "").startswith("worker died while running it: killed by signal 9 (SIGKILL; out of "
                                           "memory?)"), eater.reason
    after = session.submit_tasks([sl.TaskDescription(function=abs, args=(-number,)) for number in range(4)])
    assert [task.result(timeout=60) for task in after] == list(range(4))


def test_a_node_whose_idle_workers_keep_dying_is_taken_out(session: sl.Session, local_pilot: sl.Pilot,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Five SIGKILLs of idle workers within a minute: the pilot's one node is out of the schedule, so the pilot
    fails saying why; the profile and ``status`` say it too."""
    killed: set[int] = set()
    while len(killed) < 5 and local_pilot.state is sl.PilotState.ACTIVE:
        wait_until(lambda: bool(set(live_workers(local_pilot)) - killed), what="a worker to kill")
        pid = min(set(live_workers(local_pilot)) - killed)
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    assert local_pilot.wait(timeout=60) is sl.PilotState.FAILED
    why = "5 of its workers died within 60 s while running no task (the last: killed by signal 9 (SIGKILL"
    assert (local_pilot.failure or "").startswith("every node of this pilot is out of the schedule: node "), \
        local_pilot.failure
    assert why in (local_pilot.failure or "")
    (out,) = [row for row in session.profile(frame=False) if row["component"] == "node" and row["event"] == "out"]
    assert out["event"] == "out" and str(out["detail"]).startswith(why[:40])
    assert main(["status", session.uid, "--json"]) == 0
    (pilot,) = json.loads(capsys.readouterr().out)["pilots"]
    assert list(pilot["nodes_out"].values()) == [out["detail"]] and pilot["workers_replaced"] == 4


def test_workers_ended_by_the_jobs_sigterm_are_not_replaced(session: sl.Session, local_pilot: sl.Pilot) -> None:
    """A batch system ending the job signals every process, the workers often first: the pilot ends with the
    agent's reason, and no worker is replaced or blamed."""
    assert local_pilot.agent_pid is not None
    for pid in live_workers(local_pilot):
        os.kill(pid, signal.SIGTERM)
    os.kill(local_pilot.agent_pid, signal.SIGTERM)
    assert local_pilot.wait(timeout=30) is sl.PilotState.FAILED
    assert (local_pilot.failure or "").startswith("the agent received SIGTERM"), local_pilot.failure
    assert not worker_events(session, "replace") and not worker_events(session, "lost")


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
@pytest.mark.timeout(240)
def test_a_worker_lost_on_a_slurm_node_is_replaced_there_by_its_node_manager(session: sl.Session) -> None:
    """A worker SIGKILLed on the pilot's second node (started by one srun step of one node manager per node): that
    node's manager reports it at once and forks a replacement there (no new srun step); the pilot runs on both
    nodes."""
    pilot = session.submit_pilot(sl.PilotDescription(resource="slurm", nodes=2, runtime=300))
    assert pilot.wait("ACTIVE", timeout=150) is sl.PilotState.ACTIVE, "queued behind other jobs? (squeue)"
    first, second = (name for name, _, _ in pilot.nodes)  # (whichever two nodes of the cluster were free)

    def started(where: str) -> dict[str, int]:
        return {str(row["uid"]): int(str(row["detail"]).removeprefix("pid ")) for row in session.profile(frame=False)
                if row["component"] == "worker" and row["event"] == "start" and row["where"] == where}

    wait_until(lambda: len(started(second)) == 4, timeout=60, what="the workers of the second node said hello")
    victim, pid = sorted(started(second).items())[0]
    os.kill(pid, signal.SIGKILL)  # (every fake node of the test cluster is this host)
    replacement = f"{victim.rpartition('.')[0]}.r0001"
    wait_until(lambda: replacement in started(second), timeout=60, what="a replacement on the second node")
    (lost,) = worker_events(session, "lost")
    assert lost["uid"] == victim and lost["detail"] == "killed by signal 9 (SIGKILL; out of memory?)"
    report = sl.TaskDescription(executable="/bin/sh", arguments=["-c", "sleep 0.5; echo $SLURMD_NODENAME"])
    tasks = session.submit_tasks([report] * 16)
    session.wait_tasks(tasks, timeout=120)
    assert {t.state for t in tasks} == {TaskState.DONE}
    assert {t.stdout for t in tasks} == {f"{first}\n", f"{second}\n"} and pilot.state is sl.PilotState.ACTIVE


def test_workers_stopped_by_a_pilot_cancel_are_not_replaced(session: sl.Session, local_pilot: sl.Pilot) -> None:
    token = str(6000 + os.getpid() % 1000)
    tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=[token])] * 2)
    wait_until(lambda: all(task.state is TaskState.RUNNING for task in tasks), what="both tasks running")
    workers = live_workers(local_pilot)
    local_pilot.cancel()
    assert local_pilot.wait(timeout=30) is sl.PilotState.CANCELED
    assert {task.wait(timeout=30) for task in tasks} == {TaskState.CANCELED}
    wait_until(lambda: not any(map(alive, workers)), timeout=10, what="the workers' end")
    assert not worker_events(session, "replace") and not worker_events(session, "lost")
    assert len(worker_events(session, "stop")) == 2
