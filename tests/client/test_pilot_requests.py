"""What a pilot may ask of a resource: refused (naming field and value) before anything is made, or warned."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psutil
import pytest

import scalems_like as sl
from scalems_like import PilotState
from tests.processes import wait_until


def test_a_pilot_that_cannot_fit_this_machine_is_refused_before_anything_is_made(
        session: sl.Session, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(sl.ConfigError, match=r"PilotDescription.nodes = 2: resource 'local' runs pilots on this "
                                             r"machine only .*: nodes must be 1"):
        session.submit_pilot(sl.PilotDescription(resource="local", nodes=2, cores=1, runtime=60))
    assert session.pilots == [] and not session.sandbox("local").exists()
    many = (os.cpu_count() or 1) + 2
    with caplog.at_level(logging.WARNING, logger="scalems_like"):
        pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=many, runtime=60))
    assert f"PilotDescription.cores = {many} on resource 'local': this machine has {os.cpu_count()}" in caplog.text
    pilot.cancel()  # (at once: while its job starts, a cancel must still reach what the job starts after it)
    assert pilot.wait(timeout=60) is PilotState.CANCELED
    wait_until(lambda: not of_sandbox(pilot.sandbox), timeout=30, what="no process of the pilot left")


def of_sandbox(sandbox: Path) -> list[int]:
    """Processes whose command line names ``sandbox`` (the bootstrap, the agent, its workers)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(sandbox) in " ".join(process.info["cmdline"] or []):
            found.append(process.pid)
    return found
