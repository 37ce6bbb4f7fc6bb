"""One client per session: an exclusive lock on ``DATA_DIR/sessions/UID/client.lock`` while a client has it open.

An agent serves one client. A second client that reattached to a session another live process holds would take
its agents away from it (the first client then fails their pilots as silent and cancels their jobs), and two
clients recovering the same session at once would each write their own view of it into the journal. So the
process that opens a session — new, reattached or resumed — takes the lock (``flock``, released by the kernel
when the process dies, however it dies) and keeps it until ``close()`` or ``detach()``; ``reattach`` and
``resume`` of a held session fail at once, naming the holder, and change nothing.

The file says who holds it (``{"pid", "host", "since"}``, written after locking, cleared on release), for the
error message only: the lock, not the text, decides (:func:`is_held` probes it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from scalems_like.errors import SessionInUse

LOCK_FILE = "client.lock"

log = logging.getLogger("scalems_like.client")


class ClientLock:
    """The held lock of one session's client (see the module)."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self.descriptor = descriptor

    @classmethod
    def acquire(cls, directory: Path, uid: str) -> ClientLock:
        """Lock session ``uid`` (its journal ``directory``) for this process; raises SessionInUse naming the
        holder if another process has it."""
        path = directory / LOCK_FILE
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock_exclusively(descriptor, uid, path)
            holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, holder.encode(), 0)
        except BaseException:  # (refused, or the holder's text could not be written: a full disk)
            os.close(descriptor)
            raise
        lock = cls(path, descriptor)
        _HELD.add(lock)
        return lock

    def release(self) -> None:
        if self.descriptor < 0:
            return
        _HELD.discard(self)
        with contextlib.suppress(OSError):
            os.ftruncate(self.descriptor, 0)
        os.close(self.descriptor)  # (closing the descriptor releases the lock)
        self.descriptor = -1


def _lock_exclusively(descriptor: int, uid: str, path: Path) -> None:
    """flock LOCK_EX, tried a few times over 0.1 s (an ``is_held`` probe holds a shared lock for an instant);
    SessionInUse if another client holds it."""
    for attempt in range(5):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == 4:
                raise SessionInUse(f"session {uid} is in use by {describe_holder(path)}: it must detach "
                                   "(Session.detach()) or end before another client can reattach or resume it"
                                   ) from None
            time.sleep(0.025)
        except OSError as error:  # a file system without flock (Lustre mounted noflock, ...): go on, unguarded
            log.warning("session %s: %s cannot be locked (%s): a second client of this session would not be "
                        "refused", uid, path, error)
            return


_HELD: set[ClientLock] = set()
"""The locks this process holds."""


def _forget_in_child() -> None:
    """A forked child (multiprocessing, a daemon) closes its copies of the lock descriptors — without unlocking:
    an flock belongs to the open file, which the parent still holds. Else a child outliving the client would
    hold the session."""
    for lock in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(lock.descriptor)
        lock.descriptor = -1
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def is_held(directory: Path) -> bool:
    """A client holds the session of journal ``directory`` now: the lock itself is probed (a shared flock, for an
    instant — ``acquire`` retries past it), so a holder that died, on any host, counts as gone."""
    try:
        descriptor = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # (a file system without flock: nobody can tell; a session is taken as live)
        return True
    finally:
        os.close(descriptor)
    return False


def describe_holder(path: Path) -> str:
    """"process PID on HOST (since TIME)" from the lock file, or "another client process"."""
    try:
        holder = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
        return f"a live client: process {int(holder['pid'])} on {holder['host']} (since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another live client process"
