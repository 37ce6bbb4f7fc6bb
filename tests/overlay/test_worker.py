"""A worker's construction (settings in, no I/O) and how it runs an executable (a real process, its pidfd)."""

from __future__ import annotations

import hashlib
import os
import pickle
import select
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from scalems_like.overlay.execution import RunningExecutable, keep_return_value, start_executable
from scalems_like.overlay.worker import Worker
from tests.processes import alive, wait_until


def test_worker_constructor_takes_its_task_environment_and_reads_no_variable(monkeypatch: pytest.MonkeyPatch
                                                                             ) -> None:
    monkeypatch.setenv("SCALEMS_NODE", "from-the-environment")
    monkeypatch.setenv("ONLY_IN_OS_ENVIRON", "1")
    worker = Worker("tcp://127.0.0.1:1", "w", "n1", heartbeat_interval=1.0, heartbeat_timeout=10.0,
                    mpi_launcher="none", environment={"PATH": "/bin"})
    assert worker.node == "n1" and worker.environment == {"PATH": "/bin"}
    assert worker.socket is None  # connect() opens it


def test_worker_from_environment_reads_the_agent_variables_and_the_launcher_rank() -> None:
    environ = {
        "SCALEMS_NODE": "n7", "SCALEMS_HEARTBEAT_INTERVAL": "2.5", "SCALEMS_HEARTBEAT_TIMEOUT": "30",
        "SCALEMS_MPI_LAUNCHER": "srun", "SCALEMS_INSECURE": "1", "SLURM_PROCID": "3", "SLURM_NODELIST": "n[1-4]",
        "PATH": "/usr/bin",
    }
    worker = Worker.from_environment("tcp://127.0.0.1:1", "pilot.worker", environ)
    assert (worker.uid, worker.node, worker.mpi_launcher) == ("pilot.worker.0003", "n7", "srun")  # (as fork names them)
    assert (worker.heartbeat_interval, worker.heartbeat_timeout) == (2.5, 30.0)
    assert worker.environment["PATH"] == "/usr/bin" and "SCALEMS_NODE" in worker.environment
    assert "SLURM_PROCID" not in worker.environment and "SLURM_NODELIST" not in worker.environment  # step's own
    defaults = Worker.from_environment("tcp://127.0.0.1:1", "w", {"SLURMD_NODENAME": "c042", "SCALEMS_INSECURE": "1"})
    assert (defaults.uid, defaults.node, defaults.heartbeat_interval, defaults.mpi_launcher) == ("w", "c042", 1.0,
                                                                                                   "none")


def executable_task(sandbox: Path, script: str) -> dict[str, Any]:
    return {"uid": "t", "executable": "/bin/sh", "arguments": ["-c", script], "sandbox": str(sandbox),
            "ranks": 1, "stdout": "stdout", "stderr": "stderr", "timeout": None}


def test_running_executable_constructor_opens_nothing() -> None:
    running = RunningExecutable({"uid": "t", "timeout": 5}, pid=-1, started=100.0, pidfd=-1)
    assert running.pidfd == -1 and running.deadline == 105.0 and running.ended_by is None


def test_started_executable_is_watched_through_its_pidfd(tmp_path: Path) -> None:
    running = start_executable(executable_task(tmp_path, "echo out; exit 3"), "none", {"PATH": "/bin:/usr/bin"})
    assert isinstance(running, RunningExecutable)
    readable, _, _ = select.select([running.pidfd], [], [], 30)
    assert readable == [running.pidfd]  # the pidfd tells the end without waiting on the process
    update: dict[str, Any] = {}
    running.finish(update)
    assert update == {"exit_code": 3, "state": "FAILED", "reason": "exited with code 3"}
    assert (tmp_path / "stdout").read_text() == "out\n"


def test_open_of_an_ended_process_still_reports_its_end(tmp_path: Path) -> None:
    pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
    wait_until(lambda: not alive(pid), what="/bin/true ended (a zombie, not yet reaped)")
    running = RunningExecutable.open({"uid": "t"}, pid, started=time.time())
    update: dict[str, Any] = {}
    running.finish(update)
    assert update == {"exit_code": 0, "state": "DONE"}


def test_a_large_return_value_goes_to_a_file_and_one_that_cannot_be_written_fails_saying_where(
        tmp_path: Path) -> None:
    task: dict[str, Any] = {"uid": "task.000000", "sandbox": str(tmp_path / "task.000000"),
                            "results_in_sandbox_above": 16}
    small, large = pickle.dumps(1), pickle.dumps(list(range(100)))
    update: dict[str, Any] = {"state": "DONE", "return_value": small}
    keep_return_value(task, update)
    assert update == {"state": "DONE", "return_value": small} and not Path(task["sandbox"]).exists()
    update = {"state": "DONE", "return_value": large}
    keep_return_value({**task, "results_in_sandbox_above": None}, update)  # null: every value travels
    assert update == {"state": "DONE", "return_value": large}
    update = {"state": "DONE", "return_value": large}
    keep_return_value(task, update)
    written = Path(task["sandbox"]) / "return_value.pickle"
    assert update == {"state": "DONE", "return_value_file": {
        "name": "return_value.pickle", "bytes": len(large), "sha256": hashlib.sha256(large).hexdigest()}}
    assert written.read_bytes() == large and stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    (tmp_path / "a-file").write_text("")
    update = {"state": "DONE", "return_value": large}
    keep_return_value({**task, "sandbox": str(tmp_path / "a-file" / "task.000001")}, update)
    assert update["state"] == "FAILED" and update["reason"].startswith(
        f"its return value ({len(large)} bytes) could not be written to {tmp_path}/a-file/task.000001/"
        "return_value.pickle: ") and "return_value" not in update
