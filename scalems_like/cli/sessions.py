"""``scalems-like reattach SESSION | resume SESSION``: durable sessions from the command line (``ls`` lists them)."""

from __future__ import annotations

import argparse
import time

from scalems_like.cli.console import cli_console
from scalems_like.cli.run import print_summary
from scalems_like.client.session import Session
from scalems_like.errors import ConfigError
from scalems_like.states import TaskState


def reattach_or_resume(arguments: argparse.Namespace, *, resume: bool) -> int:
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
    # tasks by state, times, the slowest, failures grouped by reason: as `run` ends (from the journal); the
    # session's time, not this command's
    print_summary(session.uid, tasks, None, cli_console())
    return 0 if all(task.state is TaskState.DONE for task in tasks) else 1


def run_reattach(arguments: argparse.Namespace) -> int:
    return reattach_or_resume(arguments, resume=False)


def run_resume(arguments: argparse.Namespace) -> int:
    return reattach_or_resume(arguments, resume=True)
