"""Shared fixtures: every test runs with its own config and data directories (never the real home)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import scalems_like as sl


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
