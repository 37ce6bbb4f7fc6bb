"""Pilots on the ``local`` resource through psij's local executor: cancel while the bootstrap runs.

psij-python 0.9.11's own local cancel can end its only reaper thread (see ``terminate_local``), after which no
local job of the process is reported again; these tests cancel real bootstraps and then need the executor to
report another pilot.
"""

from __future__ import annotations

import time

import scalems_like as sl
from scalems_like import PilotState
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
    # the executor still reports jobs: a second pilot in the same process starts, runs a task and ends
    second = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=300))
    (task,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-3,))])
    assert task.result(timeout=120) == 3
    second.cancel()
    assert second.wait(timeout=60) is PilotState.CANCELED


def test_cancel_of_a_pilot_whose_bootstrap_already_ended(session: sl.Session) -> None:
    """A bootstrap that fails at once: a cancel that comes after its job ended changes nothing and breaks
    nothing (psij's own cancel of an ended local process is what killed its reaper)."""
    failing = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=300,
                                                       pre_bootstrap=["exit 7"]))
    assert failing.wait(timeout=60) is PilotState.FAILED
    assert "exit code 7" in failing.failure or "exit status 7" in failing.failure, failing.failure
    failing.cancel()
    assert failing.state is PilotState.FAILED
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=300))
    assert pilot.wait("ACTIVE", timeout=120) is PilotState.ACTIVE
