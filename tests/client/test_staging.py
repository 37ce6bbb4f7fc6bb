"""Staging with real files through a real local pilot: every action and scope that makes sense."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import TaskState


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The client's working directory (the client:// scope)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def shell(script: str, **staging: object) -> sl.TaskDescription:
    return sl.TaskDescription(executable="/bin/sh", arguments=["-c", script], **staging)  # type: ignore[arg-type]


def test_client_to_task_and_back(session: sl.Session, local_pilot: sl.Pilot, workdir: Path) -> None:
    (workdir / "data").mkdir()
    (workdir / "data" / "in.txt").write_text("hello\n")
    (task,) = session.submit_tasks([shell("tr a-z A-Z < in.txt > out.txt",
                                          input_staging=["data/in.txt > in.txt"],
                                          output_staging=["out.txt > client:///results/out.txt"])])
    assert task.wait(timeout=60) is TaskState.DONE
    assert (workdir / "results" / "out.txt").read_text() == "HELLO\n"
    assert (task.sandbox / "in.txt").read_text() == "hello\n"


def test_pilot_data_staged_once_and_linked_into_100_tasks(session: sl.Session, workdir: Path) -> None:
    (workdir / "forcefield.dat").write_text("parameters\n")
    pilot = session.submit_pilot(sl.PilotDescription(
        cores=2, input_staging=["forcefield.dat > pilot:///shared/forcefield.dat"]))
    assert (pilot.sandbox / "shared" / "forcefield.dat").read_text() == "parameters\n"
    tasks = session.submit_tasks([
        shell("cat ff.dat", input_staging=[{"source": "pilot:///shared/forcefield.dat", "target": "ff.dat",
                                            "action": "link"}]) for _ in range(100)])
    session.wait_tasks(tasks, timeout=120)
    assert {t.state for t in tasks} == {TaskState.DONE} and {t.stdout for t in tasks} == {"parameters\n"}
    links = {os.readlink(t.sandbox / "ff.dat") for t in tasks}
    assert links == {str(pilot.sandbox / "shared" / "forcefield.dat")}


def test_session_scope_moves_outputs_between_tasks(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (first,) = session.submit_tasks([shell("echo stage-one > result.txt", output_staging=[
        {"source": "result.txt", "target": "session:///collected/result.txt", "action": "move"}])])
    assert first.wait(timeout=60) is TaskState.DONE
    assert not (first.sandbox / "result.txt").exists()
    (second,) = session.submit_tasks([shell("cat previous.txt",
                                            input_staging=["session:///collected/result.txt > previous.txt"])])
    assert second.wait(timeout=60) is TaskState.DONE and second.stdout == "stage-one\n"


def test_absolute_paths_on_the_resource(session: sl.Session, local_pilot: sl.Pilot, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "table.csv").write_text("a,b\n")
    (task,) = session.submit_tasks([shell("wc -l < table.csv > lines.txt", input_staging=[
        f"file://{project}/table.csv > table.csv"], output_staging=[f"lines.txt > file://{project}/out/lines.txt"])])
    assert task.wait(timeout=60) is TaskState.DONE
    assert (project / "out" / "lines.txt").read_text() == "1\n"


def test_plain_absolute_paths_are_file_paths(session: sl.Session, local_pilot: sl.Pilot, workdir: Path) -> None:
    """'o.txt > /abs/o.txt' writes /abs/o.txt (it wrote $PWD/abs/o.txt and ended DONE); an absolute input source
    is read where it is (a missing one was reported as $PWD/... , a path the user never wrote)."""
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "in.txt").write_text("absolute\n")
    (task,) = session.submit_tasks([shell("cat in.txt > o.txt", input_staging=[f"{elsewhere}/in.txt > in.txt"],
                                          output_staging=[f"o.txt > {elsewhere}/results/o.txt"])])
    assert task.wait(timeout=60) is TaskState.DONE
    assert (elsewhere / "results" / "o.txt").read_text() == "absolute\n"
    assert not (workdir / str(elsewhere).lstrip("/")).exists()
    (missing,) = session.submit_tasks([shell("true", input_staging=[f"{elsewhere}/nothing > x"])])
    assert missing.wait(timeout=60) is TaskState.FAILED
    assert f"source {elsewhere}/nothing does not exist" in str(missing.reason)


def test_unscoped_pilot_directives_mean_the_pilot_sandbox(workdir: Path) -> None:
    (workdir / "forcefield.dat").write_text("parameters\n")
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(
            cores=1, input_staging=["forcefield.dat > shared/forcefield.dat"],
            output_staging=["agent.log > logs/agent.log"]))
        assert (pilot.sandbox / "shared" / "forcefield.dat").read_text() == "parameters\n"
        pilot.wait("ACTIVE", timeout=60)
    assert pilot.state is sl.PilotState.DONE and pilot.staging_failure is None
    assert "agent" in (workdir / "logs" / "agent.log").read_text()


def test_resource_scope_is_reused_across_sessions_by_checksum(workdir: Path) -> None:
    (workdir / "model.bin").write_bytes(os.urandom(100_000))
    stage = {"source": "model.bin", "target": "resource:///cache/model.bin"}
    inodes = []
    for _ in range(2):
        with sl.Session() as session:
            pilot = session.submit_pilot(sl.PilotDescription(cores=1))
            (task,) = session.submit_tasks([shell("test -s model.bin", input_staging=[
                stage, {"source": "resource:///cache/model.bin", "target": "model.bin", "action": "link"}])])
            assert task.wait(timeout=60) is TaskState.DONE
            cached = pilot.sandbox.parent.parent / "cache" / "model.bin"
            inodes.append(cached.stat().st_ino)
    assert inodes[0] == inodes[1], "the second session copied the unchanged file again"


def test_tarball_of_a_directory_keeps_modes_and_symlinks(session: sl.Session, local_pilot: sl.Pilot,
                                                         workdir: Path) -> None:
    tree = workdir / "inputs"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "params.txt").write_text("p\n")
    (tree / "run.sh").write_text("#!/bin/sh\ncat params\n")
    (tree / "run.sh").chmod(0o755)
    (tree / "params").symlink_to("sub/params.txt")
    (task,) = session.submit_tasks([shell("cd inputs && ./run.sh", input_staging=[
        {"source": "inputs", "target": "inputs", "action": "tarball"}], output_staging=[
        {"source": "inputs", "target": "client:///returned", "action": "tarball"}])])
    assert task.wait(timeout=60) is TaskState.DONE and task.stdout == "p\n"
    returned = workdir / "returned"
    assert stat.S_IMODE((returned / "run.sh").stat().st_mode) == 0o755
    assert os.readlink(returned / "params") == "sub/params.txt"


def test_outputs_of_a_failed_task_come_back_when_asked(session: sl.Session, local_pilot: sl.Pilot,
                                                       workdir: Path) -> None:
    (task,) = session.submit_tasks([shell("echo 'segfault at step 42' > md.log; exit 139", output_staging=[
        {"source": "md.log", "target": "client:///logs/md.log", "when": "failure"},
        {"source": "md.log", "target": "client:///logs/never.log", "when": "success"}])])
    assert task.wait(timeout=60) is TaskState.FAILED and task.exit_code == 139
    assert (workdir / "logs" / "md.log").read_text() == "segfault at step 42\n"
    assert not (workdir / "logs" / "never.log").exists()


def test_failed_transfer_fails_the_task_naming_the_directive(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([shell("true", output_staging=["missing.out > client:///x.out"])])
    assert task.wait(timeout=60) is TaskState.FAILED
    assert task.reason.startswith("output staging 'missing.out > client:///x.out' failed: source ")
    (early,) = session.submit_tasks([shell("true", input_staging=["pilot:///nothing-here > x"])])
    assert early.wait(timeout=60) is TaskState.FAILED
    assert early.reason.startswith("input staging 'pilot:///nothing-here > x' failed")
    assert TaskState.RUNNING not in [state for state, _, _ in early.history]


@pytest.mark.parametrize(
    ("staging", "match"),
    [
        ({"input_staging": ["missing.txt > x"]}, r"item 0: input_staging 'missing.txt > x': source .* does not exist"),
        ({"input_staging": ["../../etc/passwd > x"]}, "escapes the client scope"),
        ({"output_staging": ["x > client:///blocker/y"]}, r"blocker is a file"),
        ({"input_staging": ["s3://bucket/x > x"]}, "unknown scope 's3'"),
        ({"output_staging": ["x > file:///proc/version/y"]}, "/proc/version is a file"),
    ],
)
def test_hostile_or_impossible_directives_are_refused_at_submission(
        session: sl.Session, workdir: Path, staging: dict, match: str) -> None:
    (workdir / "blocker").write_text("a file, not a directory")
    with pytest.raises(sl.ConfigError, match=match):
        session.submit_tasks([shell("true", **staging)])
    assert session.tasks == []  # nothing was submitted


def test_pilot_output_staging_runs_when_the_pilot_ends(workdir: Path) -> None:
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(
            cores=1, output_staging=["pilot:///agent.log > client:///logs/agent.log"]))
        pilot.wait("ACTIVE", timeout=60)
    assert pilot.state is sl.PilotState.DONE and pilot.staging_failure is None
    assert "agent" in (workdir / "logs" / "agent.log").read_text()


def test_an_unexpected_error_in_pilot_output_staging_still_ends_the_pilot(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The staging runs off the I/O thread; if it raises (not a StagingError: a bug, a full disk...) the pilot
    must still reach its final state, with the error as its staging failure, instead of staying "ending"."""
    from scalems_like.client import pilot_lifecycle

    def explode(*_arguments: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pilot_lifecycle, "run_directives", explode)
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(
            cores=1, output_staging=["pilot:///agent.log > client:///logs/agent.log"]))
        pilot.wait("ACTIVE", timeout=60)
    assert pilot.state is sl.PilotState.DONE
    assert pilot.staging_failure == "output staging failed: RuntimeError: disk on fire"
