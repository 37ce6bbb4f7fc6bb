"""The same psij jobs on psij's ``local`` executor and on ``scalems-like`` (a real local pilot): same results."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psij
import pytest
from psij import Job, JobSpec, JobState

from tests.psij_executor.conftest import started_executor

pytestmark = pytest.mark.timeout(120)

Case = Callable[[Path], JobSpec]


@pytest.fixture(scope="module")
def pilot_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("psij-home")


@pytest.fixture(scope="module")
def executor(pilot_dirs: Path) -> Iterator[psij.JobExecutor]:
    """One scalems-like executor (one session, one 2-core local pilot) for the module, with its own dirs."""
    chosen = started_executor(pilot_dirs)
    yield chosen
    chosen.close()


@pytest.fixture(scope="module")
def local() -> psij.JobExecutor:
    return psij.JobExecutor.get_instance("local")


def run(executor: psij.JobExecutor, spec: JobSpec) -> psij.JobStatus:
    job = Job(spec)
    executor.submit(job)
    status = job.wait(timeout=timedelta(seconds=60))
    assert status is not None, f"{executor.name}: job {job.native_id} did not end"
    return status


def script(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


CASES: dict[str, Case] = {
    "stdout, stderr, exit code": lambda d: JobSpec(
        "/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], stdout_path=d / "out", stderr_path=d / "err"),
    "stdin": lambda d: JobSpec(
        "/bin/cat", stdin_path=script(d, "in", "line 1\nline 2\n"), stdout_path=d / "out"),
    "no stdout path: /dev/null": lambda d: JobSpec("/bin/echo", ["lost"]),
    "environment, relative paths in the job's directory": lambda d: JobSpec(
        "/bin/sh", ["-c", 'echo "$PSIJ_TEST_VALUE $HOME"; pwd'], environment={"PSIJ_TEST_VALUE": 42},
        directory=d, stdout_path="out"),
    "no directory: the client's cwd": lambda d: JobSpec("/bin/pwd", stdout_path=d / "out"),
    "inherit_environment=False: the job's variables only": lambda d: JobSpec(
        "/usr/bin/env", environment={"ONLY": "this"}, inherit_environment=False, directory=d,
        stdout_path=d / "out"),
    "pre and post launch scripts": lambda d: JobSpec(
        "/bin/sh", ["-c", 'echo "job sees $FROM_PRE"'], stdout_path=d / "out",
        pre_launch=script(d, "pre.sh", "export FROM_PRE=yes\n"),
        post_launch=script(d, "post.sh", 'echo "post ran" >> out\n'), directory=d),
    "a failing pre-launch script fails the job with its output": lambda d: JobSpec(
        "/bin/true", pre_launch=script(d, "pre.sh", "echo bad pre-launch\nexit 5\n")),
    "multiple launcher: copies with their index": lambda d: JobSpec(
        "/bin/sh", ["-c", 'echo "$_PSI_J_PROCESS_INDEX_ of $_PSI_J_PROCESS_COUNT"'], stdout_path=d / "out",
        launcher="multiple", resources=psij.ResourceSpecV1(process_count=2)),  # 2 cores: the pilot's
}


def outcome(status: psij.JobStatus, directory: Path) -> tuple[object, ...]:
    files = {path.name: sorted(path.read_text().replace(str(directory), "DIR").splitlines())
             for path in sorted(directory.iterdir())}
    message = status.message if status.state == JobState.FAILED and status.exit_code == 5 else None
    return status.state, status.exit_code, message, files


@pytest.mark.parametrize("name", list(CASES))
def test_a_job_gives_what_it_gives_on_psij_local(name: str, executor: psij.JobExecutor, local: psij.JobExecutor,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for chosen in (local, executor):
        directory = tmp_path / chosen.name
        directory.mkdir()
        monkeypatch.chdir(directory)
        results.append(outcome(run(chosen, CASES[name](directory)), directory))
    assert results[1] == results[0]
    assert results[0][3] or name.startswith(("no stdout", "a failing")), "the case checks no file"


def test_a_missing_executable_fails_with_a_message(executor: psij.JobExecutor, tmp_path: Path) -> None:
    status = run(executor, JobSpec("/no/such/program", stderr_path=tmp_path / "err"))
    assert (status.state, status.exit_code) == (JobState.FAILED, 127)  # as on psij local
    assert status.message == "cannot start '/no/such/program': No such file or directory"
    assert (tmp_path / "err").read_text().endswith("/no/such/program: No such file or directory\n")


def test_states_in_order_through_both_callbacks(executor: psij.JobExecutor) -> None:
    seen_by_job: list[JobState] = []
    seen_by_executor: list[tuple[str, JobState]] = []
    job = Job(JobSpec("/bin/sh", ["-c", "exit 0"]))
    job.set_job_status_callback(lambda _job, status: seen_by_job.append(status.state))
    executor.set_job_status_callback(lambda changed, status: seen_by_executor.append((changed.id, status.state)))
    try:
        executor.submit(job)
        job.wait(timeout=timedelta(seconds=60))
    finally:
        executor.set_job_status_callback(lambda _job, _status: None)
    assert seen_by_job == [JobState.QUEUED, JobState.ACTIVE, JobState.COMPLETED]
    assert [state for uid, state in seen_by_executor if uid == job.id] == seen_by_job
    assert re.fullmatch(rf"{re.escape(str(executor.session_uid))}/task\.\d{{6}}", str(job.native_id))


def test_cancel_a_running_job_and_list_the_unfinished(executor: psij.JobExecutor) -> None:
    job = Job(JobSpec("/bin/sleep", ["60"]))
    executor.submit(job)
    assert job.wait(timeout=timedelta(seconds=60), target_states=[JobState.ACTIVE]).state == JobState.ACTIVE
    assert job.native_id in executor.list()
    job.cancel()
    status = job.wait(timeout=timedelta(seconds=30))
    assert status.state == JobState.CANCELED and "canceled" in status.message
    assert job.native_id not in executor.list()


def test_duration_is_the_task_timeout(executor: psij.JobExecutor) -> None:
    status = run(executor, JobSpec("/bin/sleep", ["60"], attributes=psij.JobAttributes(
        duration=timedelta(seconds=0.5))))
    assert status.state == JobState.FAILED
    assert status.message == "timed out after 0.5 s (process group killed)"


def test_mpi_launchers_use_the_pilots_which_local_has_not(executor: psij.JobExecutor) -> None:
    status = run(executor, JobSpec("/bin/true", launcher="mpirun", resources=psij.ResourceSpecV1(process_count=2)))
    assert status.state == JobState.FAILED
    assert status.message == "ranks=2 needs an MPI launcher, and this resource has mpi_launcher: none"


def test_a_bad_job_is_refused_at_submit(executor: psij.JobExecutor, tmp_path: Path) -> None:
    with pytest.raises(psij.InvalidJobException, match="launcher 'ibrun' is not supported"):
        executor.submit(Job(JobSpec("/bin/true", launcher="ibrun")))
    with pytest.raises(psij.SubmitException, match="does not exist"):  # psij local also refuses it at submit
        executor.submit(Job(JobSpec("/bin/true", directory=tmp_path / "missing")))


SUBMITTER = """
import sys, psij
executor = psij.JobExecutor.get_instance("scalems-like", url="scalems-like://local?cores=1&runtime=120")
job = psij.Job(psij.JobSpec("/bin/sh", ["-c", "while [ ! -e go ]; do sleep 0.05; done; echo attached"],
                            directory=sys.argv[1], stdout_path="out"))
executor.submit(job)
job.wait(target_states=[psij.JobState.ACTIVE])
print(job.native_id)
executor.detach()
"""


def test_attach_a_job_submitted_by_another_process(tmp_path: Path) -> None:
    submitted = subprocess.run([sys.executable, "-c", SUBMITTER, str(tmp_path)], capture_output=True, text=True,
                               timeout=90, check=True)
    native_id = submitted.stdout.strip()
    executor = psij.JobExecutor.get_instance("scalems-like")
    try:
        job = Job()
        executor.attach(job, native_id)
        assert job.native_id == native_id
        assert job.wait(timeout=timedelta(seconds=30), target_states=[JobState.ACTIVE]).state == JobState.ACTIVE
        assert executor.list() == [native_id]
        (tmp_path / "go").touch()
        status = job.wait(timeout=timedelta(seconds=30))
        assert (status.state, status.exit_code) == (JobState.COMPLETED, 0)
        assert (tmp_path / "out").read_text() == "attached\n"
    finally:
        executor.close()


def test_a_live_session_of_this_process_is_shared_and_an_unknown_one_refused(
        executor: psij.JobExecutor, pilot_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(from another process, submitting to a live session is refused: tests/psij_executor/test_attach.py)"""
    monkeypatch.setenv("SCALEMS_LIKE_DATA_DIR", str(pilot_dirs / "data"))
    other = psij.JobExecutor.get_instance("scalems-like", url=f"scalems-like://session/{executor.session_uid}")
    try:
        assert run(other, JobSpec("/bin/true")).state == JobState.COMPLETED
        with pytest.raises(psij.SubmitException, match=r"no session session\.nosuch"):
            other.attach(Job(), "session.nosuch/task.000000")
    finally:
        other.close()  # (the session is the first executor's: it goes on)
    assert run(executor, JobSpec("/bin/true")).state == JobState.COMPLETED
