"""``scalems-like submit`` and the operations commands, for real: batch jobs on the local resource and on the
test suite's SLURM cluster, each running ``scalems-like run`` with its own agent inside the allocation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from scalems_like.cli.main import main
from scalems_like.launcher.record import read_end, read_record, session_directory
from scalems_like.record.journal import Journal
from tests.adapters.test_slurm import REFUSALS

WORKFLOW = '''import os, sys
import scalems_like as sl

parameters = sl.load_parameters({"members": 2, "wait_for": "", "sleeper": 0, "seconds": 0})
session = sl.current_session()
if parameters["sleeper"]:  # a task that runs until the session ends
    session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=[str(parameters["sleeper"])])])
if parameters["wait_for"]:  # a test's gate: the session stays RUNNING until the file appears
    import time
    while not os.path.exists(parameters["wait_for"]):
        time.sleep(0.1)
tasks = session.submit_tasks([
    sl.TaskDescription(executable="/bin/sh", arguments=[
        "-c", f"sleep {parameters['seconds']}; echo member {i} job=${{SLURM_JOB_ID:-none}} "
              f"node=${{SLURMD_NODENAME:-local}}"])
    for i in range(parameters["members"])])
session.wait_tasks(tasks)
outputs = sorted(task.stdout.strip() for task in tasks)
with open("outputs.txt", "w") as handle:
    handle.write("\\n".join(outputs) + "\\n")
print("workflow", sys.argv[1:], parameters, outputs)
'''


def make_project(root: Path) -> Path:
    root.mkdir()
    (root / "workflow.py").write_text(WORKFLOW)
    (root / "scratch.bin").write_bytes(os.urandom(4096))
    (root / ".scalemsignore").write_text("*.bin\n")
    return root


def cli(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ls_rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    code, out, _ = cli(["ls", "--json"], capsys)
    assert code == 0
    return {row["session"]: row for row in json.loads(out)}


def wait_for_state(uid: str, states: tuple[str, ...], capsys: pytest.CaptureFixture[str], patience: float) -> str:
    """Ask ``ls`` until the session is in one of ``states`` (the batch system's pace; bounded)."""
    deadline = time.monotonic() + patience
    state = ""
    while time.monotonic() < deadline:
        state = ls_rows(capsys)[uid]["state"]
        if state in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"{uid} still {state} after {patience} s, not one of {states}")


def test_submit_follows_the_log_to_the_end_then_status_logs_get_delete(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    result = subprocess.run([sys.executable, "-m", "scalems_like", "submit", "--runtime", "600", "--param",
                             "members=3", "workflow.py", "alpha"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    uid = result.stdout.splitlines()[0]
    assert "bundling" in result.stderr and "2 files" in result.stderr  # scratch.bin left out by .scalemsignore
    assert "session_start started" in result.stdout  # the bootstrap's steps, streamed
    # the client's own output
    assert "workflow ['alpha'] {'members': 3, 'wait_for': '', 'sleeper': 0, 'seconds': 0}" in result.stdout
    assert f"session {uid}: DONE" in result.stderr
    last_line = result.stdout.strip().splitlines()[-1]  # not the launcher's `session_start started`
    assert last_line.startswith("[session] ") and last_line.endswith("ended DONE: every task DONE"), last_line

    record = read_record(uid)
    assert record is not None and record.parameters == {"members": 3}
    assert not (record.launcher_sandbox / "project" / "scratch.bin").exists()
    assert (record.launcher_sandbox / "project" / "outputs.txt").read_text().splitlines() == [
        f"member {i} job=none node=local" for i in range(3)]
    row = ls_rows(capsys)[uid]
    assert (row["kind"], row["state"], row["tasks"], row["parameters"]) == (
        "submitted", "DONE", {"DONE": 3}, {"members": 3})

    code, out, _ = cli(["status", uid, "--json"], capsys)
    status = json.loads(out)
    assert code == 0 and status["state"] == "DONE" and status["summary"]["states"] == {"DONE": 3}
    assert [pilot["state"] for pilot in status["pilots"]] == ["DONE"] and status["throughput"] > 0
    code, out, _ = cli(["logs", uid, "--task", "task.000001"], capsys)
    assert code == 0 and "member 1 job=none node=local" in out
    code, out, _ = cli(["logs", uid], capsys)
    assert code == 0 and "[bootstrap]" in out and "workflow ['alpha']" in out
    assert out.strip().splitlines()[-1] == last_line
    code, out, _ = cli(["logs", "last", "--json"], capsys)
    logs = json.loads(out)
    assert code == 0 and logs["session"] == uid and logs["state"] == "DONE" and logs["ended"] == last_line
    assert [source["label"] for source in logs["sources"]] == ["bootstrap", "session"]
    assert any("workflow ['alpha']" in line for line in logs["sources"][1]["lines"])
    code, out, _ = cli(["logs", uid, "--task", "task.000001", "--json"], capsys)
    task = json.loads(out)
    assert code == 0 and task["record"]["state"] == "DONE"
    assert any("member 1 job=none" in text for text in task["files"].values())
    assert cli(["logs", uid, "--json", "-f"], capsys)[0] == 2

    archive = tmp_path / "session.tar.gz"
    assert cli(["get", uid, "-o", str(archive)], capsys)[0] == 0
    with tarfile.open(archive) as unpacking:
        names = unpacking.getnames()
        assert f"{uid}/sandbox/launcher/project/outputs.txt" in names and f"{uid}/journal.sqlite" in names
        assert f"{uid}/launch.json" in names
        assert not [name for name in names if name.endswith(("keys.json", "/keys"))]  # no secret keys
    code, _, err = cli(["delete", uid], capsys)  # no terminal here, and no --yes: refuses, deletes nothing
    assert code == 2 and "--yes" in err and record.launcher_sandbox.exists()
    assert cli(["delete", uid, "--yes"], capsys)[0] == 0
    assert not record.launcher_sandbox.parent.exists() and not session_directory(uid).exists()
    assert uid not in ls_rows(capsys)


def test_ctrl_c_stops_following_not_the_session_and_cancel_ends_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    gate = tmp_path / "gate"
    follower = subprocess.Popen([sys.executable, "-m", "scalems_like", "submit", "--runtime", "600", "--param",
                                 f"wait_for={gate}", "--param", "sleeper=300", "workflow.py"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert follower.stdout is not None
    uid = follower.stdout.readline().strip()
    for line in follower.stdout:  # until the session's client runs
        if "running workflow.py" in line:
            break
    os.killpg(follower.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    assert follower.wait(timeout=30) == 0
    assert "stopped following; the session goes on" in (follower.stderr.read() if follower.stderr else "")
    assert ls_rows(capsys)[uid]["state"] == "RUNNING"

    code, _, err = cli(["delete", uid, "--yes"], capsys)
    assert code == 1 and "only finished sessions are deleted" in err
    code, out, _ = cli(["cancel", uid, "--json"], capsys)
    assert code == 0 and json.loads(out) == [{"session": uid, "was": "RUNNING", "outcome": "canceled"}]
    row = ls_rows(capsys)[uid]
    assert row["state"] == "CANCELED" and row["detail"].startswith("canceled by scalems-like cancel")
    # the client saw the cancel and canceled its own tasks and pilot before its job ended: recorded end (as after
    # Ctrl-C), the pilot and the running task CANCELED, journal closed
    assert read_end(uid) is not None and read_end(uid)["exit_code"] == 130  # type: ignore[index]
    assert [pilot["state"] for pilot in row["pilots"]] == ["CANCELED"]
    journal = Journal.open(uid)
    assert journal.counts() == {"CANCELED": 1} and journal.info()["state"] == "closed"
    journal.close()
    log = read_record(uid).session_log.read_text()  # type: ignore[union-attr]
    assert "canceled (scalems-like cancel): canceling the session's tasks and pilots" in log
    code, out, _ = cli(["cancel", uid, "--json"], capsys)
    assert json.loads(out)[0]["outcome"] == "nothing to cancel: already CANCELED"
    assert cli(["delete", uid, "--yes"], capsys)[0] == 0


def test_a_sweep_is_one_session_per_parameter_set(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "project")
    (project / "sweep.yaml").write_text("- {members: 1}\n- {members: 2}\n- {members: 3}\n")
    monkeypatch.chdir(project)
    code, out, _ = cli(["submit", "--runtime", "600", "--params", "sweep.yaml", "--json", "workflow.py"], capsys)
    submitted = json.loads(out)
    assert code == 0 and [entry["parameters"] for entry in submitted] == [{"members": n} for n in (1, 2, 3)]
    assert len({entry["sweep"] for entry in submitted}) == 1 and submitted[0]["sweep"].startswith("sweep.")
    for entry in submitted:  # follow each to its end (exit status 0: every task DONE)
        assert cli(["logs", entry["session"], "-f"], capsys)[0] == 0
    code, out, _ = cli(["ls", "--sweep", submitted[0]["sweep"], "--json"], capsys)
    rows = {row["session"]: row for row in json.loads(out)}
    assert {rows[entry["session"]]["tasks"]["DONE"] for entry in submitted} == {1, 2, 3}
    assert all(row["state"] == "DONE" for row in rows.values()) and len(rows) == 3


def test_user_errors_are_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    (project / "sweep.yaml").write_text("- 3\n")
    for arguments, message in (
            (["submit", "missing.py"], "script 'missing.py': no such file"),
            (["submit", "scratch.bin"], "not in the project bundle"),
            (["submit", "--params", "sweep.yaml", "workflow.py"], "item 0: a parameter set must be a mapping"),
            (["submit", "--resource", "nowhere", "workflow.py"], "nowhere"),
            (["logs", "session.nope"], "no session 'session.nope'"),
            (["submit", "--param", "day=2024-01-01", "workflow.py"], "a parameter value cannot be recorded"),
    ):
        code, _, err = cli(arguments, capsys)
        assert code == 1 and message in err and "Traceback" not in err, (arguments, err)
    for arguments, message in (  # usage errors: exit 2
            (["submit", "--nodes", "0", "workflow.py"], "argument --nodes: '0': expected a whole number >= 1"),
            (["cancel"], "nothing to cancel: give a SESSION, or --queued"),
            (["submit", "--runtime", "90", "workflow.py"], "--runtime 90.0: expected at least 120 seconds"),
            (["submit", "--nodes", "2", "workflow.py"], "--nodes 2: resource 'local' runs the session on this machine"),
    ):
        code, _, err = cli(arguments, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (arguments, err)
    assert ls_rows(capsys) == {}  # nothing was submitted by any of them, and nothing was left behind
    sandbox = Path(os.environ["SCALEMS_LIKE_DATA_DIR"]) / "sandbox"
    assert not sandbox.exists() or not list(sandbox.glob("session.*"))


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
def test_slurm_session_runs_inside_its_own_allocation_and_queued_ones_cancel(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node for the first session; a second one waits (the cluster is full) and ``cancel --queued`` ends it
    alone. The first session's tasks ran in its own batch job, on several of its nodes."""
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    nodes = int(subprocess.run(["sinfo", "-h", "-o", "%D"], capture_output=True, text=True, check=True).stdout)
    gate = tmp_path / "gate"
    code, out, _ = cli(["submit", "--resource", "slurm", "--nodes", str(nodes), "--runtime", "600", "--param",
                        f"wait_for={gate}", "--param", "members=8", "--param", "seconds=2", "--json",
                        "workflow.py"], capsys)
    assert code == 0
    first = json.loads(out)[0]
    submitted = [first["session"]]
    try:
        wait_for_state(first["session"], ("RUNNING",), capsys, patience=120)  # it holds every node now
        code, out, _ = cli(["submit", "--resource", "slurm", "--runtime", "600", "--json", "workflow.py"], capsys)
        second = json.loads(out)[0]
        submitted.append(second["session"])
        rows = ls_rows(capsys)
        assert rows[second["session"]]["state"] == "QUEUED"
        code, out, _ = cli(["cancel", "--queued", "--json"], capsys)
        assert code == 0 and [entry["session"] for entry in json.loads(out)] == [second["session"]]
        assert ls_rows(capsys)[second["session"]]["state"] == "CANCELED"

        gate.touch()
        assert cli(["logs", first["session"], "-f"], capsys)[0] == 0
        record = read_record(first["session"])
        assert record is not None
        outputs = (record.launcher_sandbox / "project" / "outputs.txt").read_text().split()
        assert {word for word in outputs if word.startswith("job=")} == {f"job={first['batch_id']}"}
        # spread over the allocation (which nodes exactly is the scheduler's choice: run's pilot starts with the
        # first task, the first node's workers take the first tasks, and those queued behind a task that runs
        # 0.5 s are given back for the workers of the nodes that joined since)
        assert len({word for word in outputs if word.startswith("node=")}) >= 2
        code, out, _ = cli(["status", first["session"], "--json"], capsys)
        assert json.loads(out)["state"] == "DONE" and json.loads(out)["tasks"] == {"DONE": 8}
        assert cli(["get", first["session"], "-o", str(tmp_path / "first.tar.gz")], capsys)[0] == 0
        assert cli(["delete", first["session"], "--yes"], capsys)[0] == 0
        assert cli(["delete", second["session"], "--yes"], capsys)[0] == 0
    finally:  # a failed assertion must not leave jobs holding the cluster for the tests after this one
        gate.touch()
        for uid in submitted:
            if session_directory(uid).exists() and ls_rows(capsys)[uid]["state"] not in ("DONE", "FAILED", "CANCELED"):
                main(["cancel", uid])


def running_sleeper(session: Any) -> tuple[Any, Any]:
    """A 1-core local pilot of ``session`` and its one task, RUNNING."""
    import scalems_like as sl

    pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["60"])])
    pilot.wait("ACTIVE", timeout=60)
    deadline = time.monotonic() + 60
    while task.state is not sl.TaskState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)  # (a task has no wait-for-RUNNING; its state is set by the session's I/O thread)
    assert task.state is sl.TaskState.RUNNING
    return pilot, task


def test_cancel_of_an_interactive_session_ends_its_pilot_and_task_canceled_saying_who() -> None:
    """``scalems-like cancel`` from another terminal on a session whose client runs: that client cancels, and the
    pilot and its running task end CANCELED naming the command, not FAILED under the job's SIGTERM."""
    import scalems_like as sl

    with sl.Session() as session:
        pilot, task = running_sleeper(session)
        result = subprocess.run([sys.executable, "-m", "scalems_like", "cancel", session.uid, "--json"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)[0]["outcome"] == "its client canceled 1 pilot(s) and their tasks"
        pilot.wait(timeout=60)
        task.wait(timeout=60)
    assert pilot.state is sl.PilotState.CANCELED, pilot.failure
    assert (pilot.failure or "").startswith("canceled by `scalems-like cancel` (pid ")
    assert task.state is sl.TaskState.CANCELED
    assert (task.reason or "").startswith("shut down by the client: canceled by `scalems-like cancel` (pid "), \
        task.reason


def test_a_pilot_job_canceled_behind_the_clients_back_ends_saying_why() -> None:
    """The pilot's batch job canceled by somebody else (``scancel``, here its psij executor from outside the
    session): the job gets SIGTERM (its launcher shell last, so the agent's own word arrives before the job's
    end), and the pilot and its running task end with the agent's explanation, not "batch job failed" nor
    "worker lost"."""
    import scalems_like as sl
    from scalems_like.adapters import adapter_for
    from scalems_like.resources import load_resource

    with sl.Session() as session:
        pilot, task = running_sleeper(session)
        adapter = adapter_for(load_resource("local"), Path(pilot.sandbox).parent)
        assert pilot.native_id is not None and adapter.attach(pilot.native_id, lambda _event: None)
        adapter.cancel(pilot.native_id)
        pilot.wait(timeout=60)
        task.wait(timeout=60)
    assert pilot.state is sl.PilotState.FAILED and "the agent received SIGTERM" in (pilot.failure or "")
    assert task.state is sl.TaskState.FAILED
    assert task.reason is not None and task.reason.startswith("the agent received SIGTERM")
    assert task.reason.endswith("while the task ran")


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
def test_an_impossible_allocation_names_the_sessions_batch_job_and_what_it_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(make_project(tmp_path / "project"))
    code, _, err = cli(["submit", "--resource", "slurm", "--nodes", "50", "--runtime", "600", "--detach",
                        "workflow.py"], capsys)
    message = " ".join(err.split())
    assert code == 1 and "slurm refused the session's batch job (nodes=50, " in message, message
    assert "runtime=600 s, queue=(the default)): sbatch: error: " in message
    assert REFUSALS.search(message) and "pilot job" not in message
    assert ls_rows(capsys) == {}  # nothing recorded
