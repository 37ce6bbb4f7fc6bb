"""The sessions a psij executor runs jobs in: the one it submits to, and those it attached jobs of.

- The *current* session is started on the first submit (a new session and its pilot, from the executor's
  URL) or reattached (``scalems-like://session/UID``).
- A session whose client is this process (another executor's, or a ``Session`` of the program) is shared, not
  held: this executor submits to it and follows its jobs, and leaves closing it to its owner.
- ``attach(job, "SESSION_UID/TASK_UID")`` of a session whose client is another live process follows the job
  read-only from the session's journal (:mod:`~scalems_like.psij_executor.follower`); of a closed session, too
  (its jobs have ended: their final status at once). Any other session (detached, or its client gone) is
  reattached: an agent serves one client, so reattaching takes the session over.
- Submitting to a session another live process holds is refused (its owner must ``executor.detach()`` first).
- ``close()`` (also at interpreter exit) closes every session held — it ends their pilots and cancels the jobs
  still running; ``detach()`` leaves them running for another process (until the agents' ``client_grace_period``).
  Both stop the followers.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from psij import SubmitException

from scalems_like.client.session import Session, open_here
from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ScalemsError
from scalems_like.psij_executor.follower import SessionFollower
from scalems_like.psij_executor.target import Target
from scalems_like.record.journal import Journal
from scalems_like.record.summary import journal_state

LAUNCH_SCRIPT = Path(__file__).with_name("launch.sh")


class SessionHolder:
    """The executor's sessions by uid; starts, reattaches, closes or detaches them (thread-safe)."""

    def __init__(self, target: Target) -> None:
        """Sessions for ``target``; no I/O (nothing starts before the first submit or attach)."""
        self.target = target
        self.sessions: dict[str, Session] = {}
        self.current_uid: str | None = target.session_uid
        self.scripts: dict[str, str] = {}
        self.followers: dict[str, SessionFollower] = {}
        self.finished = False
        self._lock = threading.RLock()
        self._exit_hook_registered = False

    def current(self) -> Session:
        """The session submissions go to: started with its pilot on first use, or reattached."""
        with self._lock:
            if self.current_uid is not None:
                return self.by_uid(self.current_uid)
            assert self.target.pilot is not None
            session = self._start(self.target.pilot)
            self.current_uid = session.uid
            return session

    def by_uid(self, uid: str) -> Session:
        """A held session, one this process is the client of (shared), or session ``uid`` reattached
        (SubmitException if it cannot be)."""
        with self._lock:
            self._check_open()
            if uid not in self.sessions:
                shared = open_here(uid)
                if shared is not None:
                    return shared
                check_free(uid)
                try:
                    session = Session.reattach(uid)
                except (ScalemsError, OSError) as error:
                    raise SubmitException(f"cannot reattach session {uid}: {error}") from error
                self._hold(session)
            return self.sessions[uid]

    def to_attach(self, uid: str, released: Callable[[SessionFollower], bool]) -> Session | SessionFollower:
        """Where the jobs of session ``uid`` are followed from: the session itself (held, shared or reattached),
        or, while a live client of another process holds it (or once it is closed), its journal
        (``released``: see SessionFollower)."""
        with self._lock:
            self._check_open()
            if uid in self.sessions or open_here(uid) is not None:
                return self.by_uid(uid)
            if uid in self.followers:
                return self.followers[uid]
            if session_state(uid) not in ("open", "closed"):
                return self.by_uid(uid)
            follower = self.followers[uid] = SessionFollower(uid, released)
            self._register_exit_hook()
            return follower

    def forget_follower(self, follower: SessionFollower) -> None:
        """``follower`` no longer follows (its session was taken over)."""
        with self._lock:
            if self.followers.get(follower.uid) is follower:
                del self.followers[follower.uid]
        follower.stop()

    def _start(self, description: PilotDescription) -> Session:
        self._check_open()
        session = Session()
        self._hold(session)
        try:
            session.submit_pilot(description)
        except (ScalemsError, OSError) as error:
            raise SubmitException(f"cannot start a pilot on {description.resource!r}: {error}") from error
        return session

    def _hold(self, session: Session) -> None:
        self.sessions[session.uid] = session
        self._register_exit_hook()

    def _register_exit_hook(self) -> None:
        if not self._exit_hook_registered:
            atexit.register(self.close)
            self._exit_hook_registered = True

    def _check_open(self) -> None:
        if self.finished:
            raise SubmitException("this scalems-like executor was closed or detached")

    def launch_script(self, session: Session) -> str:
        """The path of ``launch.sh`` in the session's sandbox (written once; named by its content's hash, so a
        script in use is never rewritten)."""
        with self._lock:
            if session.uid not in self.scripts:
                self.scripts[session.uid] = str(deploy_launch_script(session_sandbox(session)))
            return self.scripts[session.uid]

    def close(self) -> None:
        """Close every session held: their pilots end, their unfinished jobs end CANCELED."""
        self._finish(detach=False)

    def detach(self) -> None:
        """Leave every session held running (``Session.detach``): other processes may attach their jobs."""
        self._finish(detach=True)

    def _finish(self, *, detach: bool) -> None:
        with self._lock:
            sessions, self.sessions, self.finished = list(self.sessions.values()), {}, True
            followers, self.followers = list(self.followers.values()), {}
            if self._exit_hook_registered:
                atexit.unregister(self.close)
                self._exit_hook_registered = False
        for follower in followers:
            follower.stop()
        for session in sessions:
            session.detach() if detach else session.close()


class SessionHeld(SubmitException):
    """A live client of another process holds the session: it cannot be taken over."""


def session_state(uid: str) -> str:
    """open, detached, interrupted or closed, from the session's journal read read-only (SubmitException if it
    has none)."""
    try:
        journal = Journal.open_read_only(uid)
        try:
            return journal_state(journal.info())
        finally:
            journal.close()
    except (ScalemsError, OSError, sqlite3.Error) as error:
        raise SubmitException(f"no session {uid}: {error}") from error


def check_free(uid: str) -> None:
    """Refuse to take over a session that a live client holds (SubmitException saying what to do)."""
    state = session_state(uid)
    if state == "open":
        raise SessionHeld(f"session {uid} is in use by a live client process: its jobs can be attached here "
                              "(followed read-only), but jobs are submitted to it only by that process, or here "
                              "once it has called executor.detach() (or Session.detach()) or has ended")
    if state == "closed":
        raise SubmitException(f"session {uid} is closed: its pilots and jobs have ended")


def session_sandbox(session: Session) -> Path:
    """The session's sandbox on the resource of its first pilot (on a shared file system with the client)."""
    if not session.pilots:
        raise SubmitException(f"session {session.uid} has no pilot to run jobs on")
    return session.pilots[0].sandbox.parent


def deploy_launch_script(directory: Path) -> Path:
    """Write ``launch.sh`` into ``directory`` as ``psij-launch-HASH.sh`` (atomically) unless it is there."""
    text = LAUNCH_SCRIPT.read_bytes()
    target = directory / f"psij-launch-{hashlib.sha256(text).hexdigest()[:16]}.sh"
    if not target.exists():
        temporary = directory / f".{target.name}.{os.getpid()}.tmp"
        temporary.write_bytes(text)
        temporary.chmod(0o600)
        temporary.replace(target)
    return target
