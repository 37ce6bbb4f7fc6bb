"""``scalems-like run [--resource R] [--pilot KEY=VALUE,...] [--env NAME] SCRIPT [ARGS...]``: run a workflow script.

The command opens a session, submits the pilot, and runs SCRIPT as ``__main__`` (with ``sys.argv`` = SCRIPT
ARGS...). The script needs no session code: ``sl.current_session()`` is the session. When the script returns, the
command waits for every task the session holds, prints a summary (tasks by state, failures grouped by reason) and
closes the session. Exit code: 0 when every task is DONE; 1 when one is not, or the script raised (its traceback is
printed, the session closed, nothing it finished lost: the journal has it); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import runpy
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from scalems_like.client import cache
from scalems_like.client.session import Session
from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ConfigError, WaitTimeout
from scalems_like.states import TaskState

PILOT_KEYS: dict[str, type] = {"cores": int, "gpus": int, "nodes": int, "runtime": float, "queue": str,
                               "account": str, "project": str}
"""What ``--pilot`` may set, and how its text is read."""


def parse_pilot(text: str) -> dict[str, Any]:
    """``cores=4,runtime=3600,queue=debug`` → PilotDescription fields; errors name the key and the value."""
    fields: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = item.partition("=")
        if not separator or key not in PILOT_KEYS:
            raise ConfigError(f"--pilot {item!r}: expected KEY=VALUE with KEY one of {', '.join(PILOT_KEYS)}")
        try:
            fields[key] = PILOT_KEYS[key](value)
        except ValueError:
            raise ConfigError(f"--pilot {key}={value!r}: expected {PILOT_KEYS[key].__name__}") from None
    return fields


def run(arguments: argparse.Namespace) -> int:
    script = Path(arguments.script)
    if not script.is_file():
        raise ConfigError(f"script {str(script)!r}: no such file")
    fields = parse_pilot(arguments.pilot or "")
    if arguments.env:
        fields["environment"] = arguments.env
    description = PilotDescription(resource=arguments.resource, **fields)
    if arguments.no_cache:
        os.environ[cache.NO_CACHE_VARIABLE] = "1"
    console = Console(stderr=True)
    failed_script = False
    with Session() as session:
        pilot = session.submit_pilot(description)
        console.print(f"session {session.uid}: pilot {pilot.uid} on {description.resource}; running {script}",
                      soft_wrap=True)
        saved_argv, saved_path = sys.argv, list(sys.path)
        sys.argv = [str(script), *arguments.arguments]
        sys.path.insert(0, str(script.resolve().parent))
        started = time.monotonic()
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit_:
            failed_script = exit_.code not in (None, 0)
        except BaseException:  # the script's own failure: report it, then end the session as usual
            failed_script = True
            console.print(f"[red]the script raised:[/red]\n{traceback.format_exc()}")
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
        if not failed_script:
            try:
                session.wait_tasks(timeout=arguments.timeout)
            except WaitTimeout as error:
                console.print(f"[red]{error}[/red]; the session ends, canceling what is left", soft_wrap=True)
        tasks = session.tasks
        elapsed = time.monotonic() - started
    print_summary(session.uid, tasks, elapsed, Console())
    return 0 if not failed_script and all(task.state is TaskState.DONE for task in tasks) else 1


def print_summary(uid: str, tasks: list[Any], elapsed: float, console: Console) -> None:
    counts = collections.Counter(task.state.value for task in tasks)
    console.print(f"{uid}: {len(tasks)} task(s) in {elapsed:.1f} s", soft_wrap=True)
    table = Table()
    table.add_column("state")
    table.add_column("tasks", justify="right")
    for state in TaskState:
        if counts.get(state.value):
            table.add_row(state.value, str(counts[state.value]))
    console.print(table)
    reasons = collections.Counter(task.reason or "(no reason)" for task in tasks
                                  if task.state in (TaskState.FAILED, TaskState.CANCELED))
    if reasons:
        failures = Table(title="not DONE, by reason")
        failures.add_column("tasks", justify="right")
        failures.add_column("reason")
        for reason, count in reasons.most_common(10):
            failures.add_row(str(count), reason.splitlines()[0][:200])
        console.print(failures)


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = commands.add_parser(
        "run", help="run a workflow script in a new session and pilot; wait for its tasks; summarize",
        epilog="example: scalems-like run --resource slurm --pilot nodes=2,runtime=3600 ensemble.py 100")
    command.add_argument("--resource", default="local", help="where the pilot runs (default: local)")
    command.add_argument("--pilot", help=f"the pilot's shape: KEY=VALUE,... with KEY in {', '.join(PILOT_KEYS)}")
    command.add_argument("--env", help="a named environment profile for the pilot (scalems-like env list)")
    command.add_argument("--timeout", type=float, help="give up waiting for the tasks after this many seconds")
    command.add_argument("--no-cache", action="store_true",
                         help=f"run every app call, even those with a result in ./{cache.DIRECTORY}")
    command.add_argument("script")
    command.add_argument("arguments", nargs=argparse.REMAINDER, help="passed to the script as sys.argv[1:]")
    command.set_defaults(handler=run)
    cached = commands.add_parser("cache", help=f"app results cached in this directory (./{cache.DIRECTORY})",
                                 epilog="example: scalems-like cache ls")
    cached.add_argument("action", choices=["ls", "clear"])
    cached.add_argument("--json", action="store_true", help="machine-readable output (ls)")
    cached.set_defaults(handler=run_cache)


def run_cache(arguments: argparse.Namespace) -> int:
    if arguments.action == "clear":
        print(f"removed {cache.clear()} cached result(s) from {cache.root()}")
        return 0
    found = cache.entries()
    if arguments.json:
        print(json.dumps(found, indent=2))
        return 0
    table = Table(title=f"{cache.root()}: {len(found)} cached result(s)")
    for column in ("key", "app", "created", "bytes"):
        table.add_column(column, justify="right" if column == "bytes" else "left")
    for entry in found:
        table.add_row(entry["key"][:16], entry["app"], entry["created"], str(entry["bytes"]))
    Console().print(table)
    return 0

