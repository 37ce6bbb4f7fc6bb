"""The two task fields the psij executor needs: ``inherit_environment`` and ``wrapper`` (description, wire, worker)."""

from pathlib import Path

import msgpack
import pytest

import scalems_like as sl
from scalems_like import protocol
from scalems_like.overlay.execution import start_executable


def test_the_fields_are_checked_where_they_are_described() -> None:
    task = sl.TaskDescription(executable="x", wrapper=["/bin/sh", "-c", 'exec "$@"', "wrap"],
                              inherit_environment=False)
    assert task.wrapper == ("/bin/sh", "-c", 'exec "$@"', "wrap") and task.inherit_environment is False
    with pytest.raises(sl.ConfigError, match=r"TaskDescription\.wrapper = "):
        sl.TaskDescription(function=print, wrapper=["/bin/sh"])
    with pytest.raises(sl.ConfigError, match=r"TaskDescription\.wrapper = "):
        sl.TaskDescription(executable="x", wrapper=[""])
    with pytest.raises(sl.ConfigError, match=r"TaskDescription\.inherit_environment = 'no'"):
        sl.TaskDescription(executable="x", inherit_environment="no")  # type: ignore[arg-type]


def test_a_wrapper_of_other_than_strings_is_refused_on_the_wire() -> None:
    task = {"uid": "task.000001", "kind": "executable", "executable": "x", "arguments": [], "wrapper": ["sh", 1]}
    data = msgpack.packb([protocol.PROTOCOL_VERSION, "submit", [task]], use_bin_type=True)
    with pytest.raises(sl.ProtocolError, match="wrapper that is not a list of strings"):
        protocol.decode(data)


def test_the_worker_runs_the_wrapper_around_the_command_with_only_the_tasks_variables(tmp_path: Path) -> None:
    task = {"uid": "task.000001", "sandbox": str(tmp_path), "executable": "/usr/bin/env", "arguments": [],
            "ranks": 1, "stdout": "stdout", "stderr": "stderr", "environment": {"ONLY": "this"},
            "inherit_environment": False, "wrapper": ["/bin/sh", "-c", 'echo wrapped; exec "$@"', "wrap"]}
    running = start_executable(task, "none", {"FROM_WORKER": "1", "PATH": "/usr/bin:/bin"})
    assert not isinstance(running, str), running
    update: dict[str, object] = {}
    running.finish(update)
    assert update["state"] == "DONE"
    lines = (tmp_path / "stdout").read_text().splitlines()
    assert lines[0] == "wrapped" and "ONLY=this" in lines and not any(line.startswith("FROM_WORKER") for line in lines)


def test_an_mpi_task_without_inherited_environment_keeps_what_its_launcher_needs(tmp_path: Path) -> None:
    """A stand-in ``mpiexec`` on PATH (no MPI here) prints what the launcher sees: the allocation's variables
    (srun without SLURM_JOB_ID would ask for a new allocation) and the task's, nothing else of the worker's."""
    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    (bin_directory / "mpiexec").write_text('#!/bin/sh\nshift 2\nenv | sort > launcher.env\nexec "$@"\n')
    (bin_directory / "mpiexec").chmod(0o755)
    task = {"uid": "task.000002", "sandbox": str(tmp_path), "executable": "/bin/true", "arguments": [],
            "ranks": 2, "cores": 1, "gpus": 0, "stdout": "stdout", "stderr": "stderr",
            "environment": {"ONLY": "this"}, "inherit_environment": False}
    base = {"FROM_WORKER": "1", "PATH": f"{bin_directory}:/usr/bin:/bin", "SLURM_JOB_ID": "42", "PMI_RANK": "0"}
    running = start_executable(task, "mpiexec", base)
    assert not isinstance(running, str), running
    update: dict[str, object] = {}
    running.finish(update)
    assert update["state"] == "DONE", update
    seen = dict(line.split("=", 1) for line in (tmp_path / "launcher.env").read_text().splitlines() if "=" in line)
    assert seen["SLURM_JOB_ID"] == "42" and seen["PMI_RANK"] == "0" and seen["ONLY"] == "this"
    assert "FROM_WORKER" not in seen
