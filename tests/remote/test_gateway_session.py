"""Sessions on a resource behind ssh: the gateway on the (test) login node, pilots run by the ``local`` fork
scheduler there or (``cluster_resource``'s slurm half: the quickstart, a staging pipeline, a failing bootstrap
step, a dropped connection and reattach) by the SLURM test cluster, the sandboxes in the private scratch, which
this process cannot see. Real ssh, real processes, real SLURM; nothing connects to this process but its own ssh."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import paths
from scalems_like.client import environment
from scalems_like.client.wheel import source_digest
from scalems_like.record.journal import journal_path
from scalems_like.remote.connection import ControlMaster
from scalems_like.resources import load_resource
from tests.remote.conftest import RESOURCE, SCRATCH, direct_ssh, options


def where_am_i() -> tuple[str, bool]:
    """(the task's working directory, whether it sees the sshd's private scratch)."""
    return os.getcwd(), os.path.isdir(str(SCRATCH))


def write_resource(known_hosts: Path, extra: str = "") -> str:
    """``remote-test``: the test sshd as the login node, a resource sandbox in its private scratch; returns the
    sandbox."""
    sandbox = f"{SCRATCH}/gateway-tests"
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True, exist_ok=True)
    listed = "".join(f"\n  - {option}" for option in options(known_hosts))
    (directory / f"{RESOURCE}.yaml").write_text(
        f"login: root@127.0.0.1\nssh_options:{listed}\nsandbox: {sandbox}\nscheduler: local\nlaunch_method: fork\n"
        "client_address: 127.0.0.1\nagent_address: 127.0.0.1\nstatus_polling_interval: 0.5\n"
        f"agent_connect_timeout: 900\n{extra}")
    return sandbox


def clean_sandbox(known_hosts: Path, resource: str) -> None:
    """Remove the sessions of the resource's sandbox on the cluster, and the venvs of other versions of this code
    (the cluster's scratch is a 1 GiB tmpfs, and each version of the client's wheel has a venv of its own); the
    venv of this version stays for the next tests."""
    config = load_resource(resource)
    keep = environment.env_directory(environment.parse(None, config), Path(config.sandbox), source_digest())
    direct_ssh(known_hosts, f"rm -rf {config.sandbox}/session.* {config.sandbox}/wheels/*; "
                            f"find {keep.parent} -mindepth 1 -maxdepth 1 ! -name {keep.name} ! -name "
                            f"{keep.name}.lock -exec rm -rf {{}} + 2>/dev/null; true")


@pytest.fixture
def remote_resource(known_hosts: Path) -> Iterator[str]:
    write_resource(known_hosts)
    yield RESOURCE
    clean_sandbox(known_hosts, RESOURCE)


@pytest.fixture(params=["fork", pytest.param("slurm", marks=pytest.mark.slurm)])
def cluster_resource(request: pytest.FixtureRequest, known_hosts: Path) -> Iterator[str]:
    """The resource behind ssh, twice: the ``local`` fork scheduler on the login node (:func:`remote_resource`),
    and the SLURM test cluster (``remote-slurm-test`` of tests/remote/conftest.py: the gateway submits the pilot
    with psij's slurm executor, its workers start with srun, in the cluster's mount namespace)."""
    if request.param == "fork":
        yield request.getfixturevalue("remote_resource")
        return
    request.getfixturevalue("slurm")  # (skips saying why when the cluster does not run)
    resource = request.getfixturevalue("remote_slurm_resource")
    yield resource
    clean_sandbox(known_hosts, resource)


def test_tasks_run_behind_ssh_and_results_come_back(cluster_resource: str) -> None:
    assert not SCRATCH.exists() or not any(SCRATCH.iterdir())  # the cluster's scratch is not visible here
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(resource=cluster_resource, cores=2, runtime=600))
        pilot.wait("ACTIVE", timeout=900)
        tasks = session.submit_tasks([sl.TaskDescription(function=where_am_i)]
                                     + [sl.TaskDescription(executable="/bin/echo", arguments=[f"hello {n}"])
                                        for n in range(3)])
        session.wait_tasks(tasks, timeout=300)
        directory, sees_scratch = tasks[0].result()
        assert directory.startswith(f"{SCRATCH}/") and sees_scratch
        assert [task.stdout for task in tasks[1:]] == [f"hello {n}\n" for n in range(3)]  # read over ssh
    assert pilot.state is sl.PilotState.DONE
    events = (pilot.sandbox / "bootstrap" / "events").read_text()  # the local mirror: all of it once the job ended
    assert "environment\tdone" in events and "agent\tdone" in events and "agent_start\tstarted" in events
    assert not str(pilot.sandbox).startswith(str(SCRATCH))
    status = subprocess.run([sys.executable, "-m", "scalems_like", "status", session.uid, "--json"],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    (reported,) = json.loads(status.stdout)["pilots"]  # read from the mirror, as from a local sandbox
    assert (reported["pilot"], reported["state"], reported["step"]) == (pilot.uid, "DONE", "agent_start")


def test_a_failing_bootstrap_step_is_explained_at_the_client(cluster_resource: str) -> None:
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(
            resource=cluster_resource, cores=1, pre_bootstrap=["echo 'no such module: gromacs' >&2; false"]))
        pilot.wait(timeout=900)
        assert pilot.state is sl.PilotState.FAILED
        assert pilot.failure is not None
        assert "bootstrap step 'hooks' failed" in pilot.failure and "no such module: gromacs" in pilot.failure


def open_with_active_pilot(resource: str) -> tuple[sl.Session, sl.Pilot]:
    """An open session (not a ``with`` block: the tests detach or drop it), a 2-core pilot ACTIVE on ``resource``."""
    session = sl.Session()
    session.open()
    pilot = session.submit_pilot(sl.PilotDescription(resource=resource, cores=2, runtime=600))
    pilot.wait("ACTIVE", timeout=900)
    return session, pilot


def square_later(value: int) -> int:
    import time

    time.sleep(2)  # (still running when the connection goes)
    return value * value


def test_a_killed_connection_detaches_and_reattach_collects_everything(cluster_resource: str) -> None:
    session, _pilot = open_with_active_pilot(cluster_resource)
    tasks = session.submit_tasks([sl.TaskDescription(function=square_later, args=(n,)) for n in range(4)])
    running = [sl.TaskState.RUNNING]
    session._engine.wait_for(lambda: sum(task.state in running for task in tasks) == 2, 300, lambda: "")
    master = session._engine.gateways[cluster_resource].master
    assert master is not None
    pid = master.master_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the laptop's network goes
    session.detach()
    assert not master.check()
    assert all(not task.state.is_final for task in tasks)  # two run, two wait on the pilot: all go on, detached

    reattached = sl.Session.reattach(session.uid)
    try:
        again = reattached.tasks
        reattached.wait_tasks(again, timeout=300)
        assert [task.result() for task in again] == [n * n for n in range(4)]
        assert [task.state for task in again] == [sl.TaskState.DONE] * 4
        assert reattached.pilots[0].state is sl.PilotState.ACTIVE  # the same pilot ran on, and is followed again
    finally:
        reattached.close()
    assert reattached.pilots[0].state is sl.PilotState.DONE


def test_a_staging_pipeline_from_the_client_s_directory_and_back(cluster_resource: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inputs").mkdir()
    for n in range(20):
        (tmp_path / "inputs" / f"{n}.txt").write_text(f"{n}\n")
    (tmp_path / "notes.txt").write_text("for the pilot\n")
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(
            resource=cluster_resource, cores=2, input_staging=["notes.txt > pilot:///notes.txt"],
            output_staging=["pilot:///notes.txt > notes-back.txt"]))
        pilot.wait("ACTIVE", timeout=900)
        tasks = session.submit_tasks([
            sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo $(( $(cat in.txt) * 2 )) > out.txt"],
                               input_staging=[f"inputs/{n}.txt > in.txt"],
                               output_staging=[f"out.txt > outputs/{n}.txt"]) for n in range(20)])
        session.wait_tasks(tasks, timeout=300)
        assert [task.state for task in tasks] == [sl.TaskState.DONE] * 20
        # DONE once the output is here (fetched over ssh before the task's end was applied)
        assert [(tmp_path / "outputs" / f"{n}.txt").read_text() for n in range(20)] == [f"{2 * n}\n" for n in range(20)]
    assert (tmp_path / "notes-back.txt").read_text() == "for the pilot\n"
    assert pilot.staging_failure is None


def test_a_gateway_that_cannot_start_is_explained_at_the_client(known_hosts: Path) -> None:
    """The resource's pre-bootstrap lines run before the gateway's environment step too (a ``module load
    python`` on the login node): one that fails is named, with its output, and nothing is submitted."""
    write_resource(known_hosts, "pre_bootstrap: [scalems-no-such-command python/3.99]\n")
    try:
        with sl.Session() as session:
            with pytest.raises(sl.SubmitError) as raised:
                session.submit_pilot(sl.PilotDescription(resource=RESOURCE, cores=1))
            assert session.pilots == []
            own = ControlMaster.for_resource(load_resource(RESOURCE), journal_path(session.uid).parent / "ssh")
            assert not own.check()  # the connection the session opened for it is closed again
    finally:
        clean_sandbox(known_hosts, RESOURCE)
    text = str(raised.value)
    assert "the gateway did not start" in text and "bootstrap step 'hooks' failed" in text
    assert "scalems-no-such-command" in text and "not found" in text


def test_the_remote_example_runs_against_a_resource_named_on_its_command_line(remote_resource: str) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "remote_session.py"
    result = subprocess.run([sys.executable, str(example), remote_resource], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("the tasks ran on ")
    assert lines[1].endswith(f": {[n * n for n in range(10)]}")
    assert lines[2] == "pilot pilot.0000 ended DONE"


def test_scalems_like_run_runs_a_workflow_behind_ssh(remote_resource: str, tmp_path: Path) -> None:
    script = tmp_path / "workflow.py"
    script.write_text("import scalems_like as sl\n\n\n@sl.function_app\ndef cube(x: int) -> int:\n"
                      "    return x ** 3\n\n\nprint(sum(future.result() for future in cube.map(range(10))))\n")
    result = subprocess.run([sys.executable, "-m", "scalems_like", "run", "--resource", remote_resource, "--cores",
                             "2", str(script)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(sum(x ** 3 for x in range(10))) in result.stdout.splitlines()  # (before the run's summary)


@pytest.mark.slurm
@pytest.mark.timeout(1200)
def test_a_session_on_slurm_behind_ssh(remote_slurm_resource: str, slurm_behind_sshd: Path,
                                       known_hosts: Path) -> None:
    """The pilot is a SLURM job submitted by the gateway (psij's slurm executor on the login node), its workers
    started with srun, its sandbox in the cluster's private scratch."""
    try:
        with sl.Session() as session:
            pilot = session.submit_pilot(sl.PilotDescription(resource=remote_slurm_resource, cores=2, runtime=600))
            pilot.wait("ACTIVE", timeout=900)
            tasks = session.submit_tasks([
                sl.TaskDescription(function=where_am_i),
                sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo $SLURM_JOB_ID"])])
            session.wait_tasks(tasks, timeout=300)
            directory, sees_scratch = tasks[0].result()
            assert directory.startswith(f"{SCRATCH}/") and sees_scratch
            assert tasks[1].stdout is not None and tasks[1].stdout.strip() == pilot.native_id
        assert pilot.state is sl.PilotState.DONE
    finally:
        clean_sandbox(known_hosts, remote_slurm_resource)


def test_pilots_submitted_at_once_share_one_gateway(remote_resource: str) -> None:
    with sl.Session() as session, concurrent.futures.ThreadPoolExecutor(2) as pool:
        pilots = list(pool.map(lambda _: session.submit_pilot(sl.PilotDescription(resource=remote_resource, cores=1)),
                               range(2)))
        for pilot in pilots:
            pilot.wait("ACTIVE", timeout=900)
        gateways = subprocess.run(["pgrep", "-f", f"scalems_like.remote.gateway .*/{session.uid}/gateway"],
                                  capture_output=True, text=True).stdout.split()
        assert len(gateways) == 1  # (the pilots' agents both reached the client through it)
    assert [pilot.state for pilot in pilots] == [sl.PilotState.DONE] * 2


CLIENT_THAT_DIES = """
import os, signal, sys
import scalems_like as sl

def square_later(value):
    import time
    time.sleep(2)
    return value * value

session = sl.Session()
session.open()
pilot = session.submit_pilot(sl.PilotDescription(resource=sys.argv[1], cores=2, runtime=600))
pilot.wait("ACTIVE", timeout=900)
tasks = session.submit_tasks([sl.TaskDescription(function=square_later, args=(n,)) for n in range(4)])
session._engine.wait_for(lambda: sum(t.state is sl.TaskState.RUNNING for t in tasks) == 2, 300, lambda: "")
print(session.uid, flush=True)
os.kill(session._engine.gateways[sys.argv[1]].master.master_pid(), signal.SIGKILL)  # the network goes
os._exit(0)  # ... and the laptop's client with it: no detach, nothing closed
"""


def test_a_client_that_died_with_its_connection_is_reattached_by_the_command(remote_resource: str,
                                                                              tmp_path: Path) -> None:
    (tmp_path / "client.py").write_text(CLIENT_THAT_DIES)
    died = subprocess.run([sys.executable, str(tmp_path / "client.py"), remote_resource], capture_output=True,
                          text=True, timeout=900, cwd=tmp_path)
    assert died.returncode == 0, died.stderr
    uid = died.stdout.split()[0]
    reattached = subprocess.run([sys.executable, "-m", "scalems_like", "reattach", uid], capture_output=True,
                                text=True, timeout=900, cwd=tmp_path)
    assert reattached.returncode == 0, reattached.stderr  # every task DONE (exit 1 otherwise)
    assert f"reattached {uid}: 4 task(s)" in reattached.stderr
    again = sl.Session.reattach(uid)  # (the session closed: its journal has every result, once)
    try:
        assert [task.result() for task in again.tasks] == [n * n for n in range(4)]
    finally:
        again.close()


def slow_square(value: int) -> int:
    import time

    time.sleep(30)
    return value * value


def test_resume_runs_the_unfinished_tasks_on_a_new_pilot_behind_ssh(remote_resource: str) -> None:
    session, pilot = open_with_active_pilot(remote_resource)
    tasks = session.submit_tasks([sl.TaskDescription(function=slow_square, args=(n,), idempotent=True)
                                  for n in range(2)])
    session._engine.wait_for(lambda: all(task.state is sl.TaskState.RUNNING for task in tasks), 300, lambda: "")
    session.detach()
    assert pilot.agent_pid is not None
    os.kill(pilot.agent_pid, signal.SIGKILL)  # the pilot is lost while no client is attached (same host here)
    resumed = sl.Session.resume(session.uid, sl.PilotDescription(resource=remote_resource, cores=2, runtime=600))
    try:
        again = resumed.tasks
        resumed.wait_tasks(again, timeout=600)
        assert [task.result() for task in again] == [0, 1]
        assert [task.pilot for task in again] == ["pilot.0001"] * 2
        assert resumed.pilots[0].state.is_final and resumed.pilots[0].state is not sl.PilotState.DONE
    finally:
        resumed.close()
