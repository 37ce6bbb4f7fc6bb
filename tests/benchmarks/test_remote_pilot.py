"""benchmarks/remote_pilot.py at its smallest: one round on each side, against the SLURM test cluster behind ssh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.remote.conftest import cluster_namespace

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "remote_pilot.py"
STEPS = ("connect", "render", "upload", "submit", "start", "total")


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
@pytest.mark.timeout(600)
def test_the_remote_pilot_benchmark_measures_each_step_on_both_sides() -> None:
    if os.geteuid() != 0:
        pytest.skip("the benchmark starts an sshd in the SLURM cluster's mount namespace: root only")
    if cluster_namespace()[0] is None:
        pytest.skip(f"the SLURM test cluster has no mount namespace: {cluster_namespace()[1]}")
    result = subprocess.run([sys.executable, str(BENCHMARK), "--rounds", "1", "--json"], capture_output=True,
                            text=True, timeout=500, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results["rounds"] == 1
    assert {f"{side}_{step}_s" for side in ("local", "ssh") for step in STEPS} <= set(results)
    assert results["local_connect_s"] == results["local_upload_s"] == 0  # nothing to connect or send locally
    assert all(results[f"ssh_{step}_s"] > 0 for step in STEPS) and results["local_submit_s"] > 0
    assert results["ratio_total"] == results["ssh_total_s"] / results["local_total_s"]
    assert results["ratio_total_less_start"] == results["ssh_total_less_start_s"] / results["local_total_less_start_s"]
    assert results["sandbox_files"] == results["uploaded_files"] >= 5  # bootstrap, env, agent.json, keys, wheel
    assert results["sandbox_bytes"] > 100_000  # the wheel is in it


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
@pytest.mark.timeout(600)
def test_the_session_mode_runs_real_pilots_on_both_sides() -> None:
    """``--session``: a session on the SLURM test cluster here and one behind the sshd (gateway, relay), each a
    pilot to ACTIVE and its tasks DONE (the benchmark checks every result, and fails if a pilot does not start)."""
    if os.geteuid() != 0:
        pytest.skip("the benchmark starts an sshd in the SLURM cluster's mount namespace: root only")
    if cluster_namespace()[0] is None:
        pytest.skip(f"the SLURM test cluster has no mount namespace: {cluster_namespace()[1]}")
    result = subprocess.run([sys.executable, str(BENCHMARK), "--session", "--rounds", "1", "--tasks", "20", "--json"],
                            capture_output=True, text=True, timeout=500, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert (results["rounds"], results["tasks"]) == (1, 20)
    steps = ("submit", "active", "tasks", "close", "total")
    assert all(results[f"{side}_{step}_s"] > 0 for side in ("local", "ssh") for step in steps)
    assert all(results[f"ratio_{step}"] == results[f"ssh_{step}_s"] / results[f"local_{step}_s"] for step in steps)
