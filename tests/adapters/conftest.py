"""Helpers of the batch-system tests (the `slurm` fixture is in tests/conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

PBS_SHIM = Path(__file__).resolve().parent.parent / "cluster" / "pbs-shim"


def squeue_state(job_id: str) -> str:
    result = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return result.stdout.strip()
