"""Fixtures of the analytics tests."""

from __future__ import annotations

import pytest

from tests.analytics.known_session import write_journal


@pytest.fixture
def session_uid() -> str:
    """The uid of the known session of known_session.py, journaled in this test's data directory."""
    return write_journal("session.test.summary")
