"""One client per session: the lock a session's client holds (a second holder is refused, naming the first)."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from scalems_like.errors import SessionInUse
from scalems_like.record.client_lock import ClientLock, is_held


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


def test_is_held_probes_the_lock(tmp_path: Path) -> None:
    lock = ClientLock.acquire(tmp_path, "session.z")
    assert is_held(tmp_path)
    with pytest.raises(SessionInUse):  # (looking did not take it: the holder still holds it)
        ClientLock.acquire(tmp_path, "session.z")
    lock.release()
    assert not is_held(tmp_path)
    # a holder killed (on this host or another): its text stays, its lock went with it
    (tmp_path / "client.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": 0}))
    assert not is_held(tmp_path)


def test_a_forked_child_does_not_keep_the_session(tmp_path: Path) -> None:
    lock = ClientLock.acquire(tmp_path, "session.f")
    ready, told = os.pipe()
    child = os.fork()
    if child == 0:  # the child outlives its parent's hold (a daemon, a multiprocessing worker)
        os.write(told, b"forked")  # (the fork handlers have run by now)
        time.sleep(5)
        os._exit(0)
    try:
        assert os.read(ready, 6) == b"forked"
        lock.release()
        ClientLock.acquire(tmp_path, "session.f").release()  # the child's copy did not keep it
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_an_open_that_fails_leaves_the_session_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import scalems_like as sl
    from scalems_like.client.engine import Engine
    from scalems_like.record.journal import journal_path

    def fail(_engine: Engine, *_arguments: object) -> None:
        raise RuntimeError("no I/O thread today")
    monkeypatch.setattr(Engine, "start", fail)
    session = sl.Session()
    with pytest.raises(RuntimeError, match="no I/O thread today"):
        session.open()
    ClientLock.acquire(journal_path(session.uid).parent, session.uid).release()
