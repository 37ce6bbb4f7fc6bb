"""``scalems-like sessions | reattach SESSION | resume SESSION``: durable sessions from the command line."""

from __future__ import annotations

import argparse
import json
import time

from rich.table import Table

from scalems_like.cli.console import cli_console
from scalems_like.cli.overview import journal_state
from scalems_like.cli.run import print_summary
from scalems_like.client.journal import Journal, journal_path
from scalems_like.client.session import Session
from scalems_like.errors import ConfigError
from scalems_like.launcher.record import session_uids
from scalems_like.states import TaskState

STATES = [state.value for state in TaskState]


def summary(uid: str) -> dict[str, object]:
    journal = Journal.open(uid)
    try:
        info = journal.info()
        pilots = journal.pilots()
        return {"session": uid, "created": info.get("created", "?"), "state": journal_state(info),
                "pilots": {row[0]: row[5] for row in pilots}, "tasks": journal.counts()}
    finally:
        journal.connection.close()


def run_sessions(arguments: argparse.Namespace) -> int:
    rows = [summary(uid) for uid in session_uids() if journal_path(uid).is_file()]
    if arguments.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="sessions (newest first)")
    for column in ("session", "created", "state", "pilots", *STATES):
        table.add_column(column, justify="right" if column in STATES else "left", no_wrap=column == "session")
    for row in rows:
        pilots = row["pilots"]
        assert isinstance(pilots, dict) and isinstance(row["tasks"], dict)
        live = sum(1 for state in pilots.values() if state not in ("DONE", "FAILED", "CANCELED"))
        table.add_row(str(row["session"]), str(row["created"]), str(row["state"]), f"{live} live / {len(pilots)}",
                      *[str(row["tasks"].get(state, "")) for state in STATES])
    cli_console().print(table)
    return 0


def run_reattach(arguments: argparse.Namespace, *, resume: bool) -> int:
    started = time.monotonic()
    try:
        session = Session.resume(arguments.session) if resume else Session.reattach(arguments.session)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from None
    console = cli_console(stderr=True)
    tasks = session.tasks
    finished = sum(task.state.is_final for task in tasks)
    console.print(f"{'resumed' if resume else 'reattached'} {session.uid}: {len(tasks)} task(s), "
                  f"{finished} final after {time.monotonic() - started:.2f} s")
    if arguments.detach:
        session.detach()
    else:
        session.wait_tasks(tasks, progress=console)  # the live view only on a terminal
        session.close()
    # tasks by state, times, the slowest, failures grouped by reason: as `run` ends (from the journal)
    print_summary(session.uid, tasks, time.monotonic() - started, cli_console())
    return 0 if all(task.state is TaskState.DONE for task in tasks) else 1


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sessions = commands.add_parser("sessions", help="list journaled sessions with their state and task counts",
                                   epilog="example: scalems-like sessions --json")
    sessions.add_argument("--json", action="store_true", help="machine-readable output")
    sessions.set_defaults(handler=run_sessions)
    for name, resume, text in (
            ("reattach", False, "reconnect to a session's live pilots and collect what finished meanwhile"),
            ("resume", True, "run a session's unfinished tasks again on a new pilot (finished ones never re-run)")):
        command = commands.add_parser(name, help=text, epilog=f"example: scalems-like {name} SESSION")
        command.add_argument("session")
        command.add_argument("--detach", action="store_true",
                             help="collect what is there, then leave the pilots running (default: wait for every "
                                  "task, then close the session)")
        command.set_defaults(handler=lambda arguments, resume=resume: run_reattach(arguments, resume=resume))
