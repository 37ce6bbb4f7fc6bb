"""The client's durable record of a session: SQLite in WAL mode, written in batches by one thread.

Tables::

    session   key → value        uid, created, working directory, client pid, state (open, detached, closed)
    pilots    uid → row           description (pickled), resource, sandbox, batch id, state, failure
    blobs     digest → data       a function's pickle, stored once however many tasks call it
    tasks     uid → seq, wire     the task mapping sent to agents (msgpack; the function replaced by its digest)
    events    seq → uid, update   every state change and result, in the order the client applied them (indexed by
                                  uid: a finished task's record is read back by its uid, see ``Task._compact``)
    profile   seq → time, clock, component, where, event, uid, name, detail
                                  what else happened (pilot states, bootstrap steps, workers, clock offsets), few
                                  rows; ``clock`` is "client" or the uid of the pilot whose agent stamped the time

A session is rebuilt by replaying ``events`` through ``Task._apply``, the code that applied them live, so a
reattached session is the one that was left. Writes are queued by the session's I/O thread and committed by the
journal's own thread, many rows per transaction. SQLite's write-ahead log ignores a torn last transaction: a
client killed mid-write loses at most that batch, never anything committed before it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack

from scalems_like import paths
from scalems_like.errors import ScalemsError
from scalems_like.states import TaskState

log = logging.getLogger("scalems_like.journal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS session (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS pilots (uid TEXT PRIMARY KEY, description BLOB, resource TEXT, sandbox TEXT,
                                   native_id TEXT, state TEXT, failure TEXT);
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data BLOB);
CREATE TABLE IF NOT EXISTS tasks (uid TEXT PRIMARY KEY, seq INTEGER, wire BLOB);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT, "update" BLOB);
CREATE INDEX IF NOT EXISTS events_by_task ON events (uid);
CREATE TABLE IF NOT EXISTS profile (seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, clock TEXT, component TEXT,
                                    "where" TEXT, event TEXT, uid TEXT, name TEXT, detail TEXT);
"""
TASK_UPDATES = 'SELECT "update" FROM events WHERE uid = ? ORDER BY seq'
"""One task's updates, in order (by the ``events_by_task`` index: tens of µs in a journal of millions of rows)."""
ProfileRow = tuple[float, str, str, str, str, str, str, str]
"""(time, clock, component, where, event, uid, name, detail): one row of the ``profile`` table."""
BATCH = 5000
"""Rows per transaction at most."""
KNOWN_BLOBS = 1024
"""Digests of function pickles the writer remembers as written, at most (one written again is ignored)."""


def journal_path(session_uid: str) -> Path:
    return paths.user_data_dir() / "sessions" / session_uid / "journal.sqlite"


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a killed process
    return connection


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction (the connection is in autocommit mode: no implicit ones)."""
    connection.execute("BEGIN")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def pack_wire(wire: dict[str, Any]) -> tuple[bytes, tuple[str, bytes] | None]:
    """The task mapping as stored, and the (digest, pickle) of its function if it has one."""
    function = wire.get("function")
    if function is None:
        return msgpack.packb(wire, use_bin_type=True), None
    digest = hashlib.blake2b(function, digest_size=16).hexdigest()
    return msgpack.packb({**wire, "function": digest}, use_bin_type=True), (digest, function)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA query_only=ON")
    return connection


class JournalReader:
    """Reads single tasks back from a session's journal, from any thread, for as long as the journal file exists
    (also after the session closed): a compacted task's description and updates (:meth:`Task._compact
    <scalems_like.client.task.Task._compact>`). Its own read-only connection (it sees what the writer committed;
    the writer never waits on it), kept while the journal is open; once it closed, each read opens its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.journal: Journal | None = None
        self.closed = False

    def task(self, uid: str) -> dict[str, Any] | None:
        with self.lock, self._opened(uid) as journal:
            return journal.task(uid)

    def task_updates(self, uid: str) -> list[dict[str, Any]]:
        with self.lock, self._opened(uid) as journal:
            return journal.task_updates(uid)

    @contextlib.contextmanager
    def _opened(self, uid: str) -> Iterator[Journal]:
        journal = self.journal
        if journal is None:
            if not self.path.is_file():
                raise ScalemsError(f"task {uid}: its record is in the session's journal {self.path}, which is gone "
                                   "(was the session's directory deleted?)")
            journal = Journal(self.path, _connect_read_only(self.path))
        try:
            yield journal
        finally:
            if self.closed:
                journal.connection.close()
            else:
                self.journal = journal

    def close(self) -> None:
        """The journal closed: keep no connection open (each later read opens one)."""
        with self.lock:
            self.closed = True
            if self.journal is not None:
                self.journal.connection.close()
                self.journal = None


class Journal:
    """One session's journal. ``create``/``open`` do the I/O; ``start`` runs the writer thread."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.known_blobs: set[str] = set()
        self.on_commit: Callable[[list[dict[str, Any]]], None] | None = None
        """Called (on the writer thread) with the task updates of each committed batch."""
        self.reader = JournalReader(path)
        """Reads compacted tasks back (see :class:`JournalReader`)."""

    @classmethod
    def create(cls, session_uid: str, info: dict[str, str]) -> Journal:
        path = journal_path(session_uid)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # the narrowest permissions from the start
        connection = _connect(path)
        connection.executescript(SCHEMA)
        with transaction(connection):
            connection.executemany("INSERT OR REPLACE INTO session VALUES (?, ?)", sorted(info.items()))
        return cls(path, connection)

    @classmethod
    def open(cls, session_uid: str) -> Journal:
        """The journal of an existing session; raises FileNotFoundError naming the path if there is none."""
        path = journal_path(session_uid)
        if not path.is_file():
            raise FileNotFoundError(f"no journal for session {session_uid!r} at {path}")
        return cls(path, _connect(path))

    @classmethod
    def open_read_only(cls, session_uid: str) -> Journal:
        """The journal of a session another client may be writing, for reading only (``mode=ro``): it takes no
        write lock, ever, and each query is its own short read transaction, so the writer never waits on it and
        its checkpoints are never held back. Raises FileNotFoundError naming the path if there is none."""
        path = journal_path(session_uid)
        if not path.is_file():
            raise FileNotFoundError(f"no journal for session {session_uid!r} at {path}")
        return cls(path, _connect_read_only(path))

    # -- writing (any thread queues; the writer thread commits) ------------------------------------------
    def start(self) -> None:
        self.connection.executescript(SCHEMA)  # a journal of an earlier release gains the tables it lacks
        self.thread = threading.Thread(target=self.write_loop, name=f"journal-{self.path.parent.name}", daemon=True)
        self.thread.start()

    def set(self, key: str, value: str) -> None:
        self.queue.put(("session", (key, value)))

    def add_tasks(self, rows: list[tuple[str, int, dict[str, Any]]]) -> None:
        """(uid, seq, task mapping) of newly submitted tasks."""
        self.queue.put(("tasks", rows))

    def add_updates(self, updates: list[dict[str, Any]]) -> None:
        """Task updates the client applied (from agents, or decided by the client), in order."""
        self.queue.put(("events", updates))

    def add_profile(self, rows: list[ProfileRow]) -> None:
        """Profile rows (see the ``profile`` table), committed with the next batch."""
        self.queue.put(("profile", rows))

    def save_pilot(self, row: tuple[str, bytes, str, str, str | None, str, str | None]) -> None:
        """(uid, pickled description, resource, sandbox, batch id, state, failure) — replaces the pilot's row."""
        self.queue.put(("pilot", row))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is committed; False on timeout (or if the writer is gone)."""
        if self.thread is None or not self.thread.is_alive():
            return False
        done = threading.Event()
        self.queue.put(("flush", done))
        return done.wait(timeout)

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(("stop", None))
            self.thread.join()
            self.thread = None
        self.connection.close()
        self.reader.close()  # (reopened if a compacted task is read after the session closed)

    def write_loop(self) -> None:
        while True:
            items = [self.queue.get()]
            while len(items) < BATCH:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                updates = self.commit(items)
                if updates and self.on_commit is not None:
                    self.on_commit(updates)
            except Exception:  # the writer must live on: later batches (and the final "closed") still go in
                log.exception("journal %s: a batch of %d items was not written", self.path, len(items))
            for kind, payload in items:
                if kind == "flush":
                    payload.set()
            if any(kind == "stop" for kind, _ in items):
                return

    def commit(self, items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        """Write one batch in one transaction; returns its task updates.

        Batches are taken from the queue in order and each commits whole or not at all, so a row is durable only
        with every row queued before it: the journal never holds a pilot's final row without the task updates
        queued ahead of it (the engine queues a pass's task updates before a pilot's row). Rows of one kind keep
        their queue order (events get rising ``seq``; the last row of a pilot or a setting wins).
        """
        tasks: list[Any] = []
        blobs: list[Any] = []
        events: list[Any] = []
        pilots: list[Any] = []
        settings: list[Any] = []
        profile: list[Any] = []
        updates: list[dict[str, Any]] = []
        for kind, payload in items:
            if kind == "tasks":
                for uid, seq, wire in payload:
                    packed, blob = pack_wire(wire)
                    tasks.append((uid, seq, packed))
                    if blob is not None and blob[0] not in self.known_blobs:
                        if len(self.known_blobs) >= KNOWN_BLOBS:
                            self.known_blobs.clear()  # (a function per task: the set would grow with the tasks)
                        self.known_blobs.add(blob[0])
                        blobs.append(blob)
            elif kind == "events":
                events.extend((update["uid"], msgpack.packb(update, use_bin_type=True)) for update in payload)
                updates.extend(payload)
            elif kind == "pilot":
                pilots.append(payload)
            elif kind == "session":
                settings.append(payload)
            elif kind == "profile":
                profile.extend(payload)
        if not (tasks or events or pilots or settings or profile):
            return []
        with transaction(self.connection):
            self.connection.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", blobs)
            self.connection.executemany("INSERT OR IGNORE INTO tasks VALUES (?, ?, ?)", tasks)
            self.connection.executemany('INSERT INTO events (uid, "update") VALUES (?, ?)', events)
            self.connection.executemany("INSERT OR REPLACE INTO pilots VALUES (?, ?, ?, ?, ?, ?, ?)", pilots)
            self.connection.executemany("INSERT OR REPLACE INTO session VALUES (?, ?)", settings)
            self.connection.executemany('INSERT INTO profile (time, clock, component, "where", event, uid, name, '
                                        "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", profile)
        return updates

    # -- reading ------------------------------------------------------------------------------------------
    def info(self) -> dict[str, str]:
        return dict(self.connection.execute("SELECT key, value FROM session"))

    def pilots(self) -> list[tuple[str, bytes, str, str, str | None, str, str | None]]:
        return list(self.connection.execute("SELECT * FROM pilots ORDER BY uid"))

    def tasks(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(uid, task mapping with its function pickle restored), in submission order."""
        blobs = dict(self.connection.execute("SELECT digest, data FROM blobs"))
        for uid, packed in self.connection.execute("SELECT uid, wire FROM tasks ORDER BY seq"):
            wire = msgpack.unpackb(packed, raw=False, strict_map_key=False)
            if "function" in wire:
                wire["function"] = blobs[wire["function"]]
            yield uid, wire

    def events(self) -> Iterator[dict[str, Any]]:
        for (packed,) in self.connection.execute('SELECT "update" FROM events ORDER BY seq'):
            yield msgpack.unpackb(packed, raw=False, strict_map_key=False)

    def task(self, uid: str) -> dict[str, Any] | None:
        """The mapping of task ``uid`` (its function pickle restored), or None if the journal has no such task."""
        row = self.connection.execute("SELECT wire FROM tasks WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            return None
        wire: dict[str, Any] = msgpack.unpackb(row[0], raw=False, strict_map_key=False)
        if "function" in wire:
            (wire["function"],) = self.connection.execute("SELECT data FROM blobs WHERE digest = ?",
                                                          (wire["function"],)).fetchone()
        return wire

    def updates_after(self, seq: int, uids: list[str]) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        """(the journal's last ``seq``, the (seq, update) of tasks ``uids`` after ``seq`` up to it, in order): one
        query (one read transaction) over a range of the primary key, cheap however long the journal is."""
        marks = ", ".join("?" * len(uids))
        rows = self.connection.execute(
            f'SELECT seq, uid, "update" FROM events WHERE seq > ? AND uid IN ({marks}) '
            "UNION ALL SELECT MAX(seq), NULL, NULL FROM events ORDER BY 1", (seq, *uids)).fetchall()
        last = max((row[0] for row in rows if row[0] is not None), default=seq)
        return max(last, seq), [(row_seq, msgpack.unpackb(packed, raw=False, strict_map_key=False))
                                for row_seq, uid, packed in rows if uid is not None]

    def task_updates(self, uid: str) -> list[dict[str, Any]]:
        """The updates of one task, in order ([] for a task the journal does not know)."""
        rows = self.connection.execute(TASK_UPDATES, (uid,))
        return [msgpack.unpackb(packed, raw=False, strict_map_key=False) for (packed,) in rows]

    def profile(self) -> list[ProfileRow]:
        """The profile rows in the order they were written ([] for a journal of an earlier release)."""
        try:
            return list(self.connection.execute(
                'SELECT time, clock, component, "where", event, uid, name, detail FROM profile ORDER BY seq'))
        except sqlite3.OperationalError:  # no such table
            return []

    def agent_marks(self) -> dict[str, float]:
        """Pilot uid → the latest time its agent stamped on a row this journal has (hello, pilot states, agent
        events; not bootstrap steps, which come from their own file): agent events journaled by the agent after it
        reached no client (see :mod:`scalems_like.protocol.records`)."""
        try:
            return dict(self.connection.execute(
                "SELECT clock, MAX(time) FROM profile WHERE clock != 'client' AND component != 'bootstrap' "
                "GROUP BY clock"))
        except sqlite3.OperationalError:  # no such table
            return {}

    def bootstrap_steps(self) -> dict[str, list[tuple[float, str, str, int]]]:
        """Pilot uid → its bootstrap events (time, step, state, exit code) as recorded, in order."""
        steps: dict[str, list[tuple[float, str, str, int]]] = {}
        try:
            rows = self.connection.execute(
                "SELECT uid, time, name, event, detail FROM profile WHERE component = 'bootstrap' ORDER BY seq")
            for uid, when, step, state, code in rows:
                steps.setdefault(uid, []).append((when, step, state, int(code)))
        except (sqlite3.OperationalError, ValueError):  # no such table; a row of another release
            pass
        return steps

    def counts(self) -> dict[str, int]:
        """Tasks per state, from the last event of each task (NEW for tasks without events)."""
        # one grouped scan of events (a correlated subquery per task has no index to use: slow at 100k tasks)
        rows = self.connection.execute(
            'SELECT e."update" FROM events e JOIN (SELECT MAX(seq) AS seq FROM events GROUP BY uid) last '
            "ON e.seq = last.seq")
        counts: dict[str, int] = {}
        for (packed,) in rows:
            state = msgpack.unpackb(packed, raw=False)["state"]
            counts[state] = counts.get(state, 0) + 1
        (total,) = self.connection.execute("SELECT COUNT(*) FROM tasks").fetchone()
        if total > sum(counts.values()):
            counts[TaskState.NEW.value] = total - sum(counts.values())
        return counts


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
