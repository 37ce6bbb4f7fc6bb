"""Shared fixtures: every test runs with its own config and data directories (never the real home)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import scalems_like as sl

CLUSTER_SCRIPT = Path(__file__).resolve().parent / "cluster" / "slurm-cluster.sh"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SCALEMS_LIKE_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("SCALEMS_LIKE_DATA_DIR", str(base / "data"))
    return base


@pytest.fixture
def session() -> Iterator[sl.Session]:
    with sl.Session() as opened:
        yield opened


@pytest.fixture
def local_pilot(session: sl.Session) -> sl.Pilot:
    """A 2-core pilot on the local resource, ACTIVE."""
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=300))
    pilot.wait("ACTIVE", timeout=60)
    return pilot


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
