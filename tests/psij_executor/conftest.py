"""Shared by the psij executor's tests."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psij
import pytest
from psij import Job, JobSpec, JobState


def started_executor(directories: Path) -> psij.JobExecutor:
    """A scalems-like executor whose session and 2-core local pilot have started (one job COMPLETED), with its
    own config and data directories (tests run with a module's executor: its pilot starts once)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCALEMS_LIKE_CONFIG_DIR", str(directories / "config"))
        patch.setenv("SCALEMS_LIKE_DATA_DIR", str(directories / "data"))
        chosen = psij.JobExecutor.get_instance("scalems-like", url="scalems-like://local?cores=2&runtime=300")
        warm = Job(JobSpec("/bin/true"))
        chosen.submit(warm)  # the session and its pilot start here, with these directories
        assert warm.wait(timeout=timedelta(seconds=60)).state == JobState.COMPLETED
    return chosen
