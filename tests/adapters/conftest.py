"""The real single-host SLURM cluster of tests/cluster/slurm-cluster.sh (started by tests/run.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

CLUSTER_SCRIPT = Path(__file__).resolve().parent.parent / "cluster" / "slurm-cluster.sh"
PBS_SHIM = Path(__file__).resolve().parent.parent / "cluster" / "pbs-shim"


@pytest.fixture
def slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip (saying why) unless the test cluster runs; export its SLURM_CONF."""
    status = subprocess.run(["sh", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        reason = os.environ.get("SCALEMS_NO_SLURM_REASON") or status.stdout.strip() or status.stderr.strip()
        pytest.skip(f"the SLURM test cluster is not running ({reason}); start it as root with "
                    f"`sh {CLUSTER_SCRIPT} start`")
    environment = subprocess.run(["sh", str(CLUSTER_SCRIPT), "env"], capture_output=True, text=True, check=True)
    for line in environment.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            monkeypatch.setenv(key, value.strip("'\""))


def squeue_state(job_id: str) -> str:
    result = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return result.stdout.strip()
