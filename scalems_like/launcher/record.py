"""The launch record of a submitted session, beside its journal in ``<data dir>/sessions/UID/``.

    launch.json      written once by ``submit``: what was submitted, where, the batch job's id, the parameters
    launch.end       written by the session's ``scalems-like run`` as it ends: its exit code and the time
    launch.canceled  written by ``cancel``: when, and by which command

Each file has one writer, so none is ever read half-updated; all are written atomically, mode 0600.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from pathlib import Path
from typing import Any

from scalems_like import paths
from scalems_like.paths import write_private_file

RECORD = "launch.json"
END = "launch.end"
CANCELED = "launch.canceled"


def session_directory(uid: str) -> Path:
    """Where a session's journal and launch record live (on the client's side)."""
    return paths.user_data_dir() / "sessions" / uid


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchRecord:
    uid: str
    resource: str
    native_id: str
    """The batch system's id of the session's job."""
    submitted: float
    script: str
    """Relative to the project directory."""
    arguments: list[str]
    parameters: dict[str, Any]
    sweep: str | None
    """The sweep id shared by the sessions of one ``submit --params`` with several sets."""
    project: str
    """The project directory the bundle came from."""
    sandbox: str
    """The launcher sandbox: bootstrap files, the unpacked project (``project/``), ``session.log``."""
    nodes: int
    runtime: float
    queue: str | None = None
    account: str | None = None

    @property
    def launcher_sandbox(self) -> Path:
        return Path(self.sandbox)

    @property
    def session_log(self) -> Path:
        return self.launcher_sandbox / "session.log"

    def write(self) -> None:
        directory = session_directory(self.uid)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(directory / RECORD, json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def read_record(uid: str) -> LaunchRecord | None:
    """The launch record of ``uid``; None for a session that was not submitted (or an unreadable record)."""
    try:
        fields = json.loads((session_directory(uid) / RECORD).read_text())
        names = {field.name for field in dataclasses.fields(LaunchRecord)}
        return LaunchRecord(**{key: value for key, value in fields.items() if key in names})
    except (OSError, ValueError, TypeError):
        return None


def _write_marker(uid: str, name: str, fields: dict[str, Any]) -> None:
    write_private_file(session_directory(uid) / name, json.dumps({**fields, "time": time.time()}) + "\n")


def _read_marker(uid: str, name: str) -> dict[str, Any] | None:
    try:
        value = json.loads((session_directory(uid) / name).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def record_end(uid: str, exit_code: int) -> None:
    _write_marker(uid, END, {"exit_code": exit_code})


def read_end(uid: str) -> dict[str, Any] | None:
    return _read_marker(uid, END)


def record_canceled(uid: str, by: str) -> None:
    _write_marker(uid, CANCELED, {"by": by})


def read_canceled(uid: str) -> dict[str, Any] | None:
    return _read_marker(uid, CANCELED)


def created_from_uid(uid: str) -> float | None:
    """The creation time a session uid carries (``session.YYYYMMDD.HHMMSS.PID.HEX``, to the second); None if it
    carries none."""
    try:
        stamp = ".".join(uid.split(".")[1:3])
        return datetime.datetime.strptime(stamp, "%Y%m%d.%H%M%S").timestamp()
    except ValueError:
        return None


def newest_first(uids: list[str]) -> list[str]:
    """``uids`` by the creation time in each uid, newest first (uids of one second: by uid, a stable order).

    Not by any file's modification time: reading a journal creates and removes SQLite's -wal/-shm files, which
    changes its directory's time, and a listing ordered by it changed order each time it was read. Uids without
    a time come last.
    """
    return sorted(uids, key=lambda uid: (created_from_uid(uid) or 0.0, uid), reverse=True)


def session_uids() -> list[str]:
    """Every session the client side knows (journaled, submitted, or both), newest first (see newest_first)."""
    root = paths.user_data_dir() / "sessions"
    if not root.is_dir():
        return []
    found = [path.name for path in root.iterdir()
             if path.is_dir() and ((path / RECORD).is_file() or (path / "journal.sqlite").is_file())]
    return newest_first(found)
