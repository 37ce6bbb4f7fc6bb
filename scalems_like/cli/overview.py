"""What the operations commands know of a session, gathered once: journal, launch record, batch state.

A session is *submitted* (``scalems-like submit``: a launch record, its client ran in a batch job) or
*interactive* (its client ran where the user started it: a journal only). Both have a journal once their client
started; a submitted session still queued has only its launch record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from scalems_like import paths
from scalems_like.errors import ConfigError, UsageError
from scalems_like.launcher.record import LaunchRecord, created_from_uid, read_record, session_directory, session_uids
from scalems_like.launcher.state import LaunchState, launch_states
from scalems_like.record.journal import journal_path
from scalems_like.record.summary import journal_state, read_summary
from scalems_like.resources import ResourceConfig, load_all
from scalems_like.states import PilotState, SessionState, TaskState

LIVE_PILOT_STATES = tuple(state.value for state in PilotState if not state.is_final)


def interactive_state(client: str, tasks: dict[str, int]) -> SessionState:
    """An interactive session's state in the words ``ls`` uses for every session, from its client's state in the
    journal (open / detached / closed / interrupted / canceled, see
    :func:`~scalems_like.record.summary.journal_state`) and its task counts."""
    if client == "open":
        return SessionState.RUNNING
    if client == "detached":
        return SessionState.DETACHED
    if client == "interrupted":
        return SessionState.INTERRUPTED
    if client == "canceled":  # settled by `scalems-like cancel` after its client was gone
        return SessionState.CANCELED
    if tasks.get(TaskState.FAILED):
        return SessionState.FAILED
    return SessionState.CANCELED if tasks.get(TaskState.CANCELED) else SessionState.DONE


def created_at(uid: str, record: LaunchRecord | None) -> float:
    if record is not None:
        return record.submitted
    created = created_from_uid(uid)
    if created is not None:
        return created
    path = session_directory(uid)
    return path.stat().st_mtime if path.exists() else time.time()


def overview(uid: str, record: LaunchRecord | None, launch: LaunchState | None) -> dict[str, Any]:
    """One session as the commands show it (JSON-able)."""
    journal = read_summary(uid)
    pilots = journal["pilots"] if journal else []
    row: dict[str, Any] = {
        "session": uid, "kind": "submitted" if record else "interactive",
        "resource": record.resource if record else ",".join(sorted({pilot["resource"] for pilot in pilots})),
        "created": created_at(uid, record), "tasks": journal["tasks"] if journal else {},
        "pilots": pilots, "parameters": json.loads(journal["info"].get("parameters", "null")) if journal else None,
    }
    row["age"] = time.time() - row["created"]
    if record is not None and launch is not None:
        row.update(state=launch.state.value, detail=launch.detail, batch_id=record.native_id, sweep=record.sweep,
                   step=launch.step, script=record.script, parameters=record.parameters)
    elif journal is not None:
        state = interactive_state(journal_state(journal["info"]), journal["tasks"])
        live = [pilot["pilot"] for pilot in pilots if pilot["state"] in LIVE_PILOT_STATES]
        detail = f"{len(live)} live pilot(s)" if live and state is not SessionState.RUNNING else ""
        row.update(state=state.value, detail=detail, batch_id=None, sweep=None, step=None)
    return row


def find(uid: str) -> tuple[LaunchRecord | None, bool]:
    """(launch record, has a journal); ConfigError naming the session if neither exists."""
    record = read_record(uid)
    has_journal = journal_path(uid).is_file()
    if record is None and not has_journal:
        raise ConfigError(f"no session {uid!r} (scalems-like ls lists them; their records are in "
                          f"{paths.user_data_dir() / 'sessions'})")
    return record, has_journal


LAST = "last"
"""The name of the newest session in every command that takes a session."""
SHOWN_CANDIDATES = 5


def resolve(name: str) -> str:
    """The session uid that ``name`` means: ``last`` (the newest session), a whole uid, or a unique prefix of one
    (the leading ``session.`` may be left out). A prefix of several sessions is a usage error naming some of them;
    a name that matches none is returned as it is (the command then says that there is no such session)."""
    uids = session_uids()
    if name == LAST:
        if not uids:
            raise ConfigError(f"session 'last': there is no session yet (records in {paths.user_data_dir()})")
        return uids[0]
    if name in uids:
        return name
    matches = [uid for uid in uids if uid.startswith(name) or uid.startswith(f"session.{name}")]
    if len(matches) > 1:
        shown = ", ".join(matches[:SHOWN_CANDIDATES]) + (", ..." if len(matches) > SHOWN_CANDIDATES else "")
        raise UsageError(f"session {name!r}: a prefix of {len(matches)} sessions ({shown}); give more of the uid")
    return matches[0] if matches else name


def overviews(uids: list[str] | None = None, patience: float = 5.0) -> list[dict[str, Any]]:
    """Every session (or those named), newest first, with the batch system asked about undecided launches."""
    wanted = uids if uids is not None else session_uids()
    records = {uid: read_record(uid) for uid in wanted}
    launched = [record for record in records.values() if record is not None]
    states = launch_states(launched, patience) if launched else {}
    return [overview(uid, records[uid], states.get(uid)) for uid in wanted]


def sandboxes(uid: str, record: LaunchRecord | None, rows: list[dict[str, Any]]) -> list[Path]:
    """The session's sandboxes on every resource it used (the directories named after it)."""
    found: set[Path] = set()
    if record is not None:
        found.add(Path(record.sandbox).parent)
    for pilot in rows:
        if pilot.get("sandbox"):
            found.add(Path(pilot["sandbox"]).parent)
    for config in load_all().values():
        if isinstance(config, ResourceConfig):
            candidate = paths.expand(config.sandbox) / uid
            if candidate.is_dir():
                found.add(candidate)
    return sorted(path for path in found if path.name == uid and path.is_dir())


def is_finished(row: dict[str, Any]) -> bool:
    """Nothing of the session runs or waits: it may be deleted."""
    if row["kind"] == "submitted":
        return SessionState(row["state"]).is_final
    live = [pilot for pilot in row["pilots"] if pilot["state"] in LIVE_PILOT_STATES]
    return (SessionState(row["state"]).is_final or row["state"] == SessionState.INTERRUPTED) and not live


RECENT_SESSIONS = 20
"""How many of the newest sessions ``run`` looks at for pilots left running."""


def left_running(newest: int = RECENT_SESSIONS) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(uid, client state, live pilots) of the newest interactive sessions whose client is gone (interrupted) or
    left (detached) while their journal still has live pilots: agents that may hold cores until their client comes
    back or their grace period (``client_grace_period``) ends."""
    found = []
    for uid in session_uids()[:newest]:
        if read_record(uid) is not None:  # (a submitted session: its batch job owns its pilots)
            continue
        journal = read_summary(uid)
        if journal is None:
            continue
        client = journal_state(journal["info"])
        live = [pilot for pilot in journal["pilots"] if pilot["state"] in LIVE_PILOT_STATES]
        if client in ("interrupted", "detached") and live:
            found.append((uid, client, live))
    return found
