"""The state of a submitted session from its files and the batch system's answer (``combine`` is pure)."""

from __future__ import annotations

import time
from pathlib import Path

from scalems_like.adapters import JobEvent, JobState
from scalems_like.launcher.record import LaunchRecord, read_record, record_canceled, record_end
from scalems_like.launcher.state import combine


def make_record(tmp_path: Path, uid: str = "session.20261123.101500.1.abcd") -> LaunchRecord:
    sandbox = tmp_path / uid / "launcher"
    (sandbox / "bootstrap").mkdir(parents=True)
    record = LaunchRecord(uid=uid, resource="local", native_id="123", submitted=time.time(), script="w.py",
                          arguments=[], parameters={"a": 1}, sweep=None, project=str(tmp_path), sandbox=str(sandbox),
                          nodes=1, runtime=600.0)
    record.write()
    return record


def events(record: LaunchRecord, *lines: str) -> None:
    (record.launcher_sandbox / "bootstrap" / "events").write_text("".join(f"{line}\n" for line in lines))


def test_record_round_trip_is_private(tmp_path: Path) -> None:
    record = make_record(tmp_path)
    assert read_record(record.uid) == record
    from scalems_like.launcher.record import session_directory

    assert (session_directory(record.uid) / "launch.json").stat().st_mode & 0o777 == 0o600


def test_files_decide_before_the_batch_system(tmp_path: Path) -> None:
    record = make_record(tmp_path)
    running = JobEvent(JobState.RUNNING, time.time())
    assert combine(record, None).state == "QUEUED"
    assert combine(record, JobEvent(JobState.QUEUED, time.time())).state == "QUEUED"
    assert combine(record, running).state == "BOOTSTRAPPING"
    events(record, "1.0\tsandbox\tstarted\t0", "1.1\tsandbox\tdone\t0", "1.2\tenvironment\tstarted\t0")
    assert combine(record, running).state == "BOOTSTRAPPING"
    assert "environment" in combine(record, running).detail
    events(record, "1.0\tagent\tdone\t0", "1.3\tsession_start\tstarted\t0")
    assert combine(record, running).state == "RUNNING"
    record_end(record.uid, 0)
    assert combine(record, False).state == "DONE"  # the job is gone, but the session recorded its end


def test_a_failed_bootstrap_step_is_the_reason_with_its_log_tail(tmp_path: Path) -> None:
    record = make_record(tmp_path)
    events(record, "1.0\thooks\tstarted\t0", "1.1\thooks\tfailed\t5")
    (record.launcher_sandbox / "bootstrap" / "hooks.log").write_text("loading\nmodule: gromacs not found\n")
    state = combine(record, JobEvent(JobState.RUNNING, time.time()))
    assert state.state == "FAILED"
    assert state.detail == "bootstrap step 'hooks' failed with exit code 5: loading | module: gromacs not found"


def test_a_job_that_ends_without_the_session_ending_is_failed_and_says_so(tmp_path: Path) -> None:
    record = make_record(tmp_path)
    events(record, "1.3\tsession_start\tstarted\t0")
    state = combine(record, JobEvent(JobState.FAILED, time.time(), exit_code=143))
    assert state.state == "FAILED" and "ended FAILED with exit code 143 before the session recorded its end" in (
        state.detail)
    assert combine(record, False).state == "FAILED"
    record_end(record.uid, 1)
    assert combine(record, None).detail.startswith("scalems-like run ended with exit code 1")


def test_canceled_wins_once_the_job_is_over(tmp_path: Path) -> None:
    record = make_record(tmp_path)
    record_canceled(record.uid, "test")
    assert combine(record, JobEvent(JobState.RUNNING, time.time())).state == "CANCELING"
    assert combine(record, False).state == "CANCELED"
    record_end(record.uid, 1)  # SIGTERM ended the client: still a cancel, not a failure
    assert combine(record, None).state == "CANCELED"


def test_a_session_that_ended_done_while_a_cancel_came_stays_done(tmp_path: Path) -> None:
    record = make_record(tmp_path)
    record_canceled(record.uid, "test")
    record_end(record.uid, 0)
    assert combine(record, False).state == "DONE"
