"""Pilots on the ``local`` resource through psij's local executor: cancel while the bootstrap runs.

psij-python 0.9.11's own local cancel can end its only reaper thread (see ``terminate_local``), after which no
local job of the process is reported again; these tests cancel real bootstraps and then need the executor to
report another pilot.
"""

from __future__ import annotations

import os
import time

import psutil

import scalems_like as sl
from scalems_like import PilotState
from scalems_like.adapters.psij_adapter import terminate_local
from tests.processes import alive, processes, wait_until


def test_cancel_during_the_bootstrap_ends_its_processes_and_the_executor_goes_on(session: sl.Session) -> None:
    hook = "sleep 97.5"  # (a command line no other test uses: found by ps below)
    first = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=300, pre_bootstrap=[hook]))
    wait_until(lambda: bool(processes(hook)), timeout=60, what="the pre-bootstrap hook running")
    ((sleeper, _parent),) = processes(hook)
    assert first.state in (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING)
    started = time.monotonic()
    first.cancel()
    assert first.wait(timeout=60) is PilotState.CANCELED
    assert time.monotonic() - started < 35  # SIGTERM (SIGKILL only after 30 s)
    wait_until(lambda: not alive(sleeper), timeout=10, what="the hook's process ended")
    hooks_log = (first.sandbox / "bootstrap" / "hooks.log").read_text()
    assert "ended the bootstrap" not in hooks_log, hooks_log  # the cancel's SIGTERM, not the line, ended it
    # the executor still reports jobs: a second pilot in the same process starts, runs a task and ends
    second = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=300))
    (task,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-3,))])
    assert task.result(timeout=120) == 3
    second.cancel()
    assert second.wait(timeout=60) is PilotState.CANCELED


def test_a_local_pilot_runs_in_its_own_session_and_terminate_local_still_ends_it(session: sl.Session) -> None:
    """A terminal's Ctrl-C must not reach the pilot (its own session, by ``setsid --wait``), and the cancel of its
    job (``terminate_local``, as ``scalems-like cancel`` does for an interactive session) still ends its bootstrap
    shell, agent, workers and tasks: they are all below the job's process."""
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=300))
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["95.25"])])
    wait_until(lambda: bool(processes("/bin/sleep 95.25")), timeout=120, what="the task running")
    ((sleeper, _parent),) = processes("/bin/sleep 95.25")
    job = psutil.Process(int(pilot.native_id))
    below = job.children(recursive=True)
    (agent,) = [process for process in below if "scalems_like.agent" in " ".join(process.cmdline())]
    assert os.getsid(agent.pid) != os.getsid(0) and os.getpgid(agent.pid) != os.getpgid(0)
    assert sleeper in [process.pid for process in below]
    started = time.monotonic()
    terminate_local(int(pilot.native_id))
    assert time.monotonic() - started < 35  # SIGTERM was enough (SIGKILL only after 30 s)
    assert not [process.pid for process in below if alive(process.pid)]
    assert pilot.wait(timeout=60).is_final and task.wait(timeout=60).is_final


def test_what_ignores_the_cancels_sigterm_is_killed_after_the_patience() -> None:
    """A job whose process ignores SIGTERM (and outlives the job's own shell): SIGKILL once the patience ran
    out; the job's root (psij's child here: Popen's) is never reaped by the cancel."""
    import subprocess

    token = str(6000 + os.getpid() % 1000)
    job = subprocess.Popen(["/bin/sh", "-c", f"(trap '' TERM; exec sleep {token}.5) & sleep 100"])
    wait_until(lambda: bool(processes(f"sleep {token}.5")), timeout=10, what="the stubborn process started")
    ((stubborn, _parent),) = processes(f"sleep {token}.5")
    started = time.monotonic()
    terminate_local(job.pid, patience=2.0)
    assert 1.9 < time.monotonic() - started < 10
    wait_until(lambda: not alive(stubborn), timeout=5, what="the stubborn process killed")  # (SIGKILL is async)
    assert job.wait(timeout=10) in (143, -15)  # Popen reaped its own child (had the cancel, Popen would say 0)
