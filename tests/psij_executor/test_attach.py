"""psij's attach contract: a job's native id handed to another executor, in this process or another, which then
follows the job to its end — while the executor that submitted it still runs the session (a real local pilot)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psij
import pytest
from psij import Job, JobSpec, JobState

from scalems_like.psij_executor.sessions import session_state
from scalems_like.record.client_lock import is_held
from scalems_like.record.journal import journal_path
from tests.psij_executor.conftest import started_executor

pytestmark = pytest.mark.timeout(180)

WAIT = timedelta(seconds=60)


@pytest.fixture(scope="module")
def owner_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("psij-attach-home")


@pytest.fixture(scope="module")
def owner(owner_dirs: Path) -> Iterator[psij.JobExecutor]:
    """The executor that submits the jobs and holds their session (one 2-core local pilot) for the module."""
    chosen = started_executor(owner_dirs)
    yield chosen
    chosen.close()


@pytest.fixture
def owner_env(owner_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The owner's directories, for this process's attaching executors and for other processes."""
    monkeypatch.setenv("SCALEMS_LIKE_CONFIG_DIR", str(owner_dirs / "config"))
    monkeypatch.setenv("SCALEMS_LIKE_DATA_DIR", str(owner_dirs / "data"))
    return dict(os.environ)


def gated_job(directory: Path, exit_code: int = 0) -> Job:
    """A job that runs until ``directory/go`` exists, then exits with ``exit_code``."""
    return Job(JobSpec("/bin/sh", ["-c", f"while [ ! -e go ]; do sleep 0.05; done; echo gone; exit {exit_code}"],
                       directory=directory, stdout_path="out"))


def test_a_second_executor_of_this_process_shares_the_live_session(owner: psij.JobExecutor, owner_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    submitted = gated_job(tmp_path)
    owner.submit(submitted)
    second = psij.JobExecutor.get_instance("scalems-like")
    attached, to_cancel = Job(), Job()
    seen: list[JobState] = []
    attached.set_job_status_callback(lambda _job, status: seen.append(status.state))
    sleeper = Job(JobSpec("/bin/sleep", ["60"]))
    owner.submit(sleeper)
    try:
        second.attach(attached, str(submitted.native_id))
        second.attach(to_cancel, str(sleeper.native_id))
        assert attached.wait(timeout=WAIT, target_states=[JobState.ACTIVE]).state == JobState.ACTIVE
        assert sorted(second.list()) == sorted([submitted.native_id, sleeper.native_id])
        (tmp_path / "go").touch()
        status = attached.wait(timeout=WAIT)
        assert (status.state, status.exit_code) == (JobState.COMPLETED, 0)
        assert submitted.wait(timeout=WAIT).state == JobState.COMPLETED
        assert seen == [JobState.QUEUED, JobState.ACTIVE, JobState.COMPLETED]
        second.cancel(to_cancel)  # a shared session: the cancel goes through it
        assert to_cancel.wait(timeout=WAIT).state == JobState.CANCELED
        assert sleeper.wait(timeout=WAIT).state == JobState.CANCELED
    finally:
        second.close()
    after = Job(JobSpec("/bin/true"))  # the second executor's close left the owner's session alone
    owner.submit(after)
    assert after.wait(timeout=WAIT).state == JobState.COMPLETED


FOLLOWER = """
import sys, psij
from datetime import timedelta
native_id = sys.argv[1]
seen = []
executor = psij.JobExecutor.get_instance("scalems-like")
executor.set_job_status_callback(lambda _job, status: seen.append(status.state.name))
job = psij.Job()
executor.attach(job, native_id)
active = job.wait(timeout=timedelta(seconds=60), target_states=[psij.JobState.ACTIVE]).state
try:
    job.cancel()
except psij.SubmitException as error:
    print("cancel refused:", error, flush=True)
session = native_id.split("/")[0]
try:
    psij.JobExecutor.get_instance("scalems-like", url="scalems-like://session/" + session).submit(
        psij.Job(psij.JobSpec("/bin/true")))
except psij.SubmitException as error:
    print("submit refused:", error, flush=True)
print(active.name, executor.list() == [native_id], flush=True)  # (the test lets the job end after this line)
status = job.wait(timeout=timedelta(seconds=60))
executor.close()  # (the follower's thread ends: every callback has run)
print("final", status.state.name, status.exit_code, status.message, ",".join(seen), flush=True)
"""


def follow_elsewhere(native_id: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """Another process that attaches ``native_id`` and prints what it sees; returns once it has seen the job
    ACTIVE, with what it printed until then."""
    process = subprocess.Popen([sys.executable, "-c", FOLLOWER, native_id], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    assert lines[-1] == "ACTIVE True\n", f"{lines} {process.stderr.read() if not lines[-1] else ''}"
    return process, lines[:2]


def test_another_process_follows_a_failing_job_while_its_owner_holds_the_session(
        owner: psij.JobExecutor, owner_env: dict[str, str], tmp_path: Path) -> None:
    submitted = gated_job(tmp_path, exit_code=3)
    owner.submit(submitted)
    follower, lines = follow_elsewhere(str(submitted.native_id), owner_env)
    (tmp_path / "go").touch()
    output, errors = follower.communicate(timeout=90)
    assert follower.returncode == 0, errors
    lines += output.splitlines()
    assert lines[0].startswith(f"cancel refused: cannot cancel job {submitted.native_id}: session "
                               f"{owner.session_uid} is held by a live client: process {os.getpid()} on ")
    assert "only that process can cancel them" in lines[0]
    assert lines[1].startswith(f"submit refused: session {owner.session_uid} is in use by a live client process")
    assert lines[2] == "final FAILED 3 exited with code 3 QUEUED,ACTIVE,FAILED"
    status = submitted.wait(timeout=WAIT)  # the owner's job: the same end, never canceled by the follower
    assert (status.state, status.exit_code, status.message) == (JobState.FAILED, 3, "exited with code 3")
    assert (tmp_path / "out").read_text() == "gone\n"
    assert is_held(journal_path(str(owner.session_uid)).parent)  # still the owner's: not taken over


def test_a_follower_never_holds_the_owner_back(owner: psij.JobExecutor, owner_env: dict[str, str],
                                               tmp_path: Path) -> None:
    gate = gated_job(tmp_path)
    owner.submit(gate)
    follower, _refusals = follow_elsewhere(str(gate.native_id), owner_env)
    try:
        for _ in range(100):  # the owner's jobs go through while the other process looks at the journal
            job = Job(JobSpec("/bin/true"))  # (one at a time: a burst queues some behind the gate's worker)
            owner.submit(job)
            assert job.wait(timeout=WAIT).state == JobState.COMPLETED
        path = journal_path(str(owner.session_uid))
        with contextlib.closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as probe:
            probe.execute("BEGIN IMMEDIATE")  # no write lock held by the follower (the owner's are short)
            probe.execute("ROLLBACK")
            busy, frames, copied = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, copied) == (0, frames)  # no reader holds an old snapshot: the whole WAL can be copied back
        assert follower.poll() is None  # (still following the gate)
    finally:
        (tmp_path / "go").touch()
    output, errors = follower.communicate(timeout=90)
    assert output.splitlines()[-1] == "final COMPLETED 0 None QUEUED,ACTIVE,COMPLETED", errors


def test_a_job_of_a_closed_session_gives_its_final_status(owner_env: dict[str, str], tmp_path: Path) -> None:
    first = psij.JobExecutor.get_instance("scalems-like", url="scalems-like://local?cores=1&runtime=120")
    job = Job(JobSpec("/bin/sh", ["-c", "exit 3"]))
    first.submit(job)
    assert job.wait(timeout=WAIT).state == JobState.FAILED
    first.close()
    later, other = Job(), psij.JobExecutor.get_instance("scalems-like")
    try:
        other.attach(later, str(job.native_id))
        status = later.wait(timeout=WAIT)
    finally:
        other.close()
    assert (status.state, status.exit_code, status.message) == (JobState.FAILED, 3, "exited with code 3")


OWNER = """
import sys, psij
executor = psij.JobExecutor.get_instance("scalems-like", url="scalems-like://local?cores=1&runtime=120")
job = psij.Job(psij.JobSpec("/bin/sh", ["-c", "while [ ! -e go ]; do sleep 0.05; done; exit 4"],
                            directory=sys.argv[1]))
executor.submit(job)
job.wait(target_states=[psij.JobState.ACTIVE])
print(job.native_id, flush=True)
sys.stdin.readline()
executor.detach()
"""


@pytest.mark.parametrize("how", ["detaches", "is killed"])
def test_a_follower_takes_the_session_over_when_its_owner_lets_it_go(how: str, owner_env: dict[str, str],
                                                                       tmp_path: Path) -> None:
    owner_process = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=owner_env)
    assert owner_process.stdout is not None
    native_id = owner_process.stdout.readline().strip()
    executor = psij.JobExecutor.get_instance("scalems-like")
    try:
        job = Job()
        executor.attach(job, native_id)  # read-only: the other process holds the session
        assert job.wait(timeout=WAIT, target_states=[JobState.ACTIVE]).state == JobState.ACTIVE
        if how == "is killed":
            owner_process.kill()
        owner_process.communicate("detach\n", timeout=60)
        (tmp_path / "go").touch()
        status = job.wait(timeout=WAIT)  # (no one would write its end into the journal: this process took over)
        assert (status.state, status.exit_code) == (JobState.FAILED, 4)
        assert session_state(native_id.split("/")[0]) == "open"
        assert executor.list() == []
    finally:
        executor.close()
    assert session_state(native_id.split("/")[0]) == "closed"  # (it was this executor's to close)
