"""One client per session: the lock a session's client holds (a second holder is refused, naming the first)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scalems_like.client.client_lock import ClientLock, SessionInUse


def test_a_held_session_is_refused_naming_its_holder_until_released(tmp_path: Path) -> None:
    first = ClientLock.acquire(tmp_path, "session.x")
    assert stat.S_IMODE((tmp_path / "client.lock").stat().st_mode) == 0o600
    with pytest.raises(SessionInUse, match=f"session session.x is in use by a live client: process {os.getpid()} "):
        ClientLock.acquire(tmp_path, "session.x")  # (flock: another open file description conflicts)
    first.release()
    first.release()  # (twice: nothing happens)
    again = ClientLock.acquire(tmp_path, "session.x")
    again.release()


def test_a_lock_file_without_a_holder_does_not_block(tmp_path: Path) -> None:
    """A client killed with SIGKILL leaves its file; the kernel released its lock."""
    (tmp_path / "client.lock").write_text('{"pid": 1, "host": "gone", "since": 0}')
    ClientLock.acquire(tmp_path, "session.y").release()
