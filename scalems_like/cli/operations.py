"""``scalems-like ls | logs | cancel | get | delete``: operate on sessions from the terminal.

``ls`` is the one listing of sessions (``sessions`` is its deprecated name); its states are
:class:`scalems_like.states.SessionState`.

All read the same records as ``reattach``/``resume``: the session journal and, for submitted sessions, the
launch record beside it (see :mod:`scalems_like.cli.overview`). Exit codes: 0 success; 1 the operation could
not be done (the message says why: e.g. ``delete`` of a running session); 2 usage error (bad arguments,
``delete`` without ``--yes`` and no terminal to ask).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.prompt import Confirm
from rich.table import Table

from scalems_like.adapters import JobEvent, adapter_for
from scalems_like.cli import follow
from scalems_like.cli.console import cli_console, header, progress_steps
from scalems_like.cli.overview import (
    LIVE_PILOT_STATES,
    find,
    is_finished,
    overviews,
    sandboxes,
)
from scalems_like.client.cancel import cancel_session
from scalems_like.errors import ConfigError, SessionInUse, UsageError
from scalems_like.launcher.bundle import human_size
from scalems_like.launcher.record import LaunchRecord, record_canceled, session_directory
from scalems_like.record.cancel_request import request_cancel
from scalems_like.record.client_lock import is_held
from scalems_like.record.journal import Journal, journal_path
from scalems_like.record.summary import journal_state, read_summary
from scalems_like.resources import load_resource
from scalems_like.states import PilotState, SessionState, TaskState

STATES = [state.value for state in TaskState]
SECRET_NAMES = ("keys", "keys.json")
"""Never put into an archive: the session's and agents' CurveZMQ secret keys."""


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def run_ls(arguments: argparse.Namespace) -> int:
    rows = overviews()
    if arguments.sweep:
        rows = [row for row in rows if row.get("sweep") == arguments.sweep]
    if arguments.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    table = Table(title=f"sessions (newest first): {len(rows)}")
    for column in ("session", "kind", "resource", "state", "batch id", "pilots", "tasks", "age", "detail"):
        if column == "session":  # an id is of use only whole: never folded over lines
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right" if column == "age" else "left", overflow="fold")
    for row in rows:
        tasks = ", ".join(f"{row['tasks'][state]} {state}" for state in STATES if row["tasks"].get(state))
        live = sum(1 for pilot in row["pilots"] if pilot["state"] in LIVE_PILOT_STATES)
        pilots = f"{live} live / {len(row['pilots'])}" if row["pilots"] else ""
        table.add_row(row["session"], row["kind"], row["resource"], row["state"], row.get("batch_id") or "",
                      pilots, tasks, age(row["age"]), row.get("detail") or "")
    cli_console().print(table)
    return 0


# -- logs ---------------------------------------------------------------------------------------------------
def task_files(uid: str, record: LaunchRecord | None, pilots: list[dict[str, Any]], task: str) -> list[Path]:
    """The stdout/stderr files of a task, in whichever pilot sandbox ran it (the last attempt last)."""
    found: list[Path] = []
    for sandbox in sandboxes(uid, record, pilots):
        for directory in sorted(sandbox.glob(f"pilot.*/tasks/{task}")):
            found += [path for path in sorted(directory.iterdir()) if path.is_file()]
    return found


def task_record(uid: str, task: str) -> dict[str, Any] | None:
    """The journal's last update of a task (state, reason, exit code, a function's printed output and remote
    traceback, which live nowhere else); None if the journal does not know the task."""
    if not journal_path(uid).is_file():
        return None
    journal = Journal.open(uid)
    try:
        updates = journal.task_updates(task)
    finally:
        journal.connection.close()
    return updates[-1] if updates else None


def print_task_record(console: Console, task: str, last: dict[str, Any]) -> None:
    header(console, f"task {task} (the session's journal)")
    lines = [f"state: {last.get('state')}" + (f" (attempt {last['attempt']})" if last.get("attempt") else "")]
    lines += [f"{key.replace('_', ' ')}: {last[key]}" for key in ("reason", "exit_code") if last.get(key) is not None]
    print("\n".join(lines))
    for key, title in (("output", "printed output"), ("traceback", "traceback (on the worker)")):
        if last.get(key):
            print(f"{title}:\n{str(last[key]).rstrip()}")


def run_logs(arguments: argparse.Namespace) -> int:
    if arguments.json and arguments.follow:
        raise UsageError("logs: --json prints what is there now; --follow prints as it comes: give one")
    record, _journal = find(arguments.session)
    (row,) = overviews([arguments.session], patience=0.0)
    if arguments.task:
        return print_task_logs(arguments, record, row)
    sources = follow.log_sources(arguments.session, record, row["pilots"])
    if arguments.follow:
        return follow.follow_session(arguments.session, record, sources)
    closing = follow.closing_line(record)
    if arguments.json:
        print(json.dumps({"session": arguments.session, "state": row["state"], "ended": closing, "sources": [
            {"label": source.label, "path": str(source.path), "lines": follow.all_lines(source)}
            for source in sources]}, indent=2))
        return 0
    for source in sources:
        follow.print_source(source)
    if closing:
        print(closing)
    return 0


def print_task_logs(arguments: argparse.Namespace, record: LaunchRecord | None, row: dict[str, Any]) -> int:
    """``logs SESSION --task UID``: the journal's record of the task's end, then its output files."""
    files = task_files(arguments.session, record, row["pilots"], arguments.task)
    last = task_record(arguments.session, arguments.task)
    if not files and last is None:
        raise ConfigError(f"--task {arguments.task!r}: no such task in session {arguments.session} (neither "
                          "in its journal nor in a pilot sandbox)")
    if arguments.json:
        print(json.dumps({"session": arguments.session, "task": arguments.task, "record": last,
                          "files": {str(path): path.read_text(errors="replace") for path in files}},
                         indent=2, default=str))
        return 0
    console = cli_console()
    if last is not None:
        print_task_record(console, arguments.task, last)
    for path in files:
        header(console, str(path))
        sys.stdout.write(path.read_text(errors="replace"))
    return 0


# -- cancel -------------------------------------------------------------------------------------------------
CLIENT_GRACE = 90.0
"""Seconds a running submitted session's own client has to cancel its tasks and pilots and end, before its batch
job is canceled: longer than its close (up to 30 s for its pilots to end, up to 30 s more to cancel their jobs),
plus output staging's usual time."""


def cancel_launch(record: LaunchRecord, console: Console, *, running: bool, patience: float = 30.0) -> str:
    """Cancel a submitted session: the ``launch.canceled`` record first — a ``running`` session's client sees it
    and cancels its own tasks and pilots (they end CANCELED), then ends, and its job with it — then, if the job is
    still there (queued, bootstrapping, or a client that did not end within :data:`CLIENT_GRACE` s), the batch
    job through its psij executor. Waits until the job has ended."""
    adapter = adapter_for(load_resource(record.resource), record.launcher_sandbox.parent)
    ended = threading.Event()

    def on_event(event: JobEvent) -> None:
        if event.state.is_final:
            ended.set()

    if not adapter.attach(record.native_id, on_event):
        return f"nothing to cancel: {record.resource} no longer knows job {record.native_id}"
    record_canceled(record.uid, f"scalems-like cancel (pid {os.getpid()})")
    if running:
        console.print(f"{record.uid}: its client cancels its tasks and pilots (its batch job is canceled if it "
                      f"has not ended within {CLIENT_GRACE:.0f} s)", soft_wrap=True)
        if ended.wait(CLIENT_GRACE):
            return "canceled"
    adapter.cancel(record.native_id)
    if ended.wait(patience):
        return "canceled"
    console.print(f"[yellow]{record.uid}: canceled, but {record.resource} still reports job {record.native_id} "
                  f"after {patience:.0f} s[/yellow]", soft_wrap=True)
    return "canceling"


def cancel_pilots(row: dict[str, Any]) -> str:
    """An interactive session a live client holds: cancel the batch jobs of its live pilots (the client sees them
    end)."""
    with_jobs = (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING, PilotState.ACTIVE)
    live = [pilot for pilot in row["pilots"] if pilot["state"] in with_jobs and pilot.get("batch_id")]
    for pilot in live:
        adapter = adapter_for(load_resource(pilot["resource"]), Path(pilot["sandbox"]).parent)
        if adapter.attach(pilot["batch_id"], lambda _event: None):
            adapter.cancel(pilot["batch_id"])
    return f"canceled {len(live)} pilot job(s)" if live else "nothing to cancel: no live pilot"


CLIENT_CANCEL_PATIENCE = 30.0
"""Seconds a live client is given to cancel its pilots itself before their batch jobs are canceled from here."""


def cancel_through_client(row: dict[str, Any], console: Console, patience: float = CLIENT_CANCEL_PATIENCE) -> str:
    """An interactive session a live client holds: ask that client to cancel its tasks and pilots (they end
    CANCELED, saying who asked: :mod:`scalems_like.record.cancel_request`); the pilots' batch jobs are canceled
    from here (:func:`cancel_pilots`) if they have not ended within ``patience`` s (a client that hangs)."""
    uid = row["session"]
    live = sum(pilot["state"] in LIVE_PILOT_STATES for pilot in row["pilots"])
    request_cancel(uid)
    console.print(f"{uid}: its client cancels its tasks and pilots (their batch jobs are canceled if they have "
                  f"not ended within {patience:.0f} s)", soft_wrap=True)
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        summary = read_summary(uid)
        if summary is not None and not any(pilot["state"] in LIVE_PILOT_STATES for pilot in summary["pilots"]):
            return f"its client canceled {live} pilot(s) and their tasks"
        time.sleep(0.5)  # (the client journals a pilot's end within a second of it)
    console.print(f"[yellow]{uid}: its client did not end its pilots within {patience:.0f} s[/yellow]")
    return cancel_pilots(read_summary(uid) or row)


def cancel_interactive(row: dict[str, Any], console: Console) -> str:
    """An interactive session: through its live client (:func:`cancel_through_client`), or, with no client
    holding it, settled here: its pilots and unfinished tasks end CANCELED in its journal
    (:mod:`scalems_like.client.cancel`)."""
    uid = row["session"]
    journal = read_summary(uid)
    client = journal_state(journal["info"]) if journal else "closed"  # (open, detached, interrupted, closed, ...)
    if is_held(journal_path(uid).parent):
        return cancel_through_client(row, console)
    if client not in ("open", "interrupted", "detached"):
        return cancel_pilots(row)
    unfinished = sum(count for state, count in row["tasks"].items() if not TaskState(state).is_final)
    if not unfinished and not any(pilot["state"] in LIVE_PILOT_STATES for pilot in row["pilots"]):
        return "nothing to cancel: its tasks and pilots have all ended"
    try:
        with progress_steps(console, f"{uid}: canceling") as report:
            settled = cancel_session(uid, report)
    except SessionInUse:  # a client took it since the look above
        return cancel_through_client(row, console)
    canceled = TaskState.CANCELED.value
    others = {**settled.states, canceled: settled.states.get(canceled, 0) - settled.tasks}
    listed = ", ".join(f"{count} {state}" for state, count in others.items() if count)
    return f"canceled {settled.pilots} pilot(s) and {settled.tasks} task(s)" + (f" (its other tasks: {listed})"
                                                                                 if listed else "")


def run_cancel(arguments: argparse.Namespace) -> int:
    if not arguments.session and not arguments.queued:
        raise UsageError("cancel: nothing to cancel: give a SESSION, or --queued (every queued submitted session)")
    if arguments.session and arguments.queued:
        raise UsageError(f"cancel: give a SESSION ({arguments.session}) or --queued, not both")
    console = cli_console(stderr=True)
    if arguments.queued:
        targets = [row for row in overviews() if row["kind"] == "submitted" and row["state"] == SessionState.QUEUED]
    else:
        find(arguments.session)
        targets = overviews([arguments.session])
    results = []
    for row in targets:
        record, _journal = find(row["session"])
        if row["kind"] == "submitted" and record is not None:
            outcome = (f"nothing to cancel: already {row['state']}" if SessionState(row["state"]).is_final
                       else cancel_launch(record, console, running=row["state"] == SessionState.RUNNING))
        else:
            outcome = cancel_interactive(row, console)
        results.append({"session": row["session"], "was": row["state"], "outcome": outcome})
    if arguments.json:
        print(json.dumps(results, indent=2))
    elif not results:
        console.print("no queued submitted session")
    else:
        for result in results:
            console.print(f"{result['session']} ({result['was']}): {result['outcome']}", soft_wrap=True)
    return 0 if all(result["outcome"] != "canceling" for result in results) else 1


# -- get ----------------------------------------------------------------------------------------------------
def _no_secrets(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if Path(member.name).name in SECRET_NAMES else member


def journal_copy(uid: str, directory: Path) -> Path:
    """A consistent copy of the journal (SQLite's backup: safe while a client writes to it)."""
    target = directory / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(journal_path(uid))) as source, \
            contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target


def run_get(arguments: argparse.Namespace) -> int:
    uid = arguments.session
    record, has_journal = find(uid)
    (row,) = overviews([uid], patience=0.0)
    output = Path(arguments.output or f"{uid}.tar.gz")
    if output.exists() and not arguments.force:
        raise ConfigError(f"--output {str(output)!r} exists (give --force to replace it)")
    console = cli_console(stderr=True)
    if not is_finished(row):
        console.print(f"[yellow]{uid} is {row['state']}: the archive is a snapshot of what is there now[/yellow]")
    descriptor, temporary = tempfile.mkstemp(dir=output.resolve().parent, prefix=f".{output.name}.")
    os.close(descriptor)
    try:
        with tempfile.TemporaryDirectory() as scratch, tarfile.open(temporary, "w:gz", compresslevel=3) as archive:
            for number, sandbox in enumerate(sandboxes(uid, record, row["pilots"])):  # one per resource root
                name = "sandbox" if number == 0 else f"sandbox-{number + 1}"
                archive.add(sandbox, arcname=f"{uid}/{name}", filter=_no_secrets)
            if has_journal:
                archive.add(journal_copy(uid, Path(scratch)), arcname=f"{uid}/journal.sqlite")
            for path in sorted(session_directory(uid).glob("launch.*")):
                archive.add(path, arcname=f"{uid}/{path.name}")
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    size = output.stat().st_size
    if arguments.json:
        print(json.dumps({"session": uid, "archive": str(output.resolve()), "bytes": size}))
    else:
        console.print(f"{uid}: {output} ({human_size(size)}; secret keys left out)", soft_wrap=True)
    return 0


# -- delete -------------------------------------------------------------------------------------------------
def tree_size(path: Path) -> tuple[int, int]:
    files = size = 0
    for directory, _subdirectories, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                size += (Path(directory) / name).lstat().st_size
                files += 1
    return files, size


def run_delete(arguments: argparse.Namespace) -> int:
    uid = arguments.session
    record, _journal = find(uid)
    (row,) = overviews([uid])
    if not is_finished(row):
        raise ConfigError(f"session {uid} is {row['state']} ({row.get('detail') or 'not finished'}): "
                          f"only finished sessions are deleted (scalems-like cancel {uid} first)")
    targets = [*sandboxes(uid, record, row["pilots"]), session_directory(uid)]
    counted = [tree_size(path) for path in targets]
    files, size = sum(count for count, _ in counted), sum(size for _, size in counted)
    console = cli_console(stderr=True)
    if not arguments.yes:
        if not console.is_terminal:
            console.print(f"[red]error:[/red] delete {uid}: no terminal to ask; give --yes to delete without asking")
            return 2
        listing = "\n  ".join(str(path) for path in targets)
        if not Confirm.ask(f"delete {uid} ({row['state']}): {files} files, {human_size(size)} in\n  {listing}\n?",
                           console=console, default=False):
            console.print("nothing deleted")
            return 1
    for path in targets:
        shutil.rmtree(path, ignore_errors=True)
    left = [str(path) for path in targets if path.exists()]
    if arguments.json:
        print(json.dumps({"session": uid, "deleted": [str(path) for path in targets], "files": files,
                          "bytes": size, "left": left}))
    else:
        console.print(f"deleted {uid}: {files} files, {human_size(size)}", soft_wrap=True)
    if left:
        console.print(f"[red]could not remove:[/red] {', '.join(left)}", soft_wrap=True)
    return 1 if left else 0
