"""The ``scalems-like`` command (also ``python -m scalems_like``).

    scalems-like resources [--json]              list the resource configs and whether they load
    scalems-like env list|show NAME|add FILE [--name NAME]|rm NAME|build NAME [--resource R]
                                                 named environment profiles
    scalems-like login RESOURCE [--check|--close]
                                                 open the ssh connection to a remote resource (prompts here)
    scalems-like ls [--sweep ID] [--json]        sessions, submitted and interactive: state, pilots, counts, age
    scalems-like status SESSION [--resource R] [--follow] [--json]
                                                 a session's pilots: bootstrap step, state, sandboxes
    scalems-like reattach SESSION [--detach]     reconnect to live pilots, collect what finished meanwhile
    scalems-like resume SESSION [--detach]       unfinished tasks of gone pilots run on a new pilot
    scalems-like run [--resource R] [--nodes N] [--cores C] [--gpus G] [--runtime T] [--queue Q] [--account A]
                     [--env NAME] [--params FILE] SCRIPT [ARGS]
                                                 run a workflow script (sl.current_session()), wait, summarize
    scalems-like cache ls|clear [--json]         app results cached in this directory
    scalems-like submit [--resource R] [--nodes N] [--cores C] [--runtime T] [--queue Q] [--account A]
                        [--params FILE] SCRIPT [ARGS]
                                                 the whole session as one batch job; follow its log
    scalems-like logs SESSION [--task UID] [-f] [--json]
                                                 a session's log (bootstrap, client output) or a task's output
    scalems-like cancel SESSION | --queued       cancel a session's batch job (or pilots); all queued ones
    scalems-like get SESSION [-o FILE]           archive its sandboxes, outputs and journal (no secret keys)
    scalems-like delete SESSION [--yes]          remove a finished session's sandboxes and records
    scalems-like profile SESSION [--csv FILE] [--json]
                                                 every recorded event of a session (CSV, JSON), or its summary
    scalems-like plot SESSION [--out FILE.png|FILE.html]
                                                 timeline per worker slot, utilisation, pilots' time split
    scalems-like init NAME                       a template workflow project that runs as it is
    scalems-like version [--json]                print the version and the wire protocol version
    scalems-like --version                       print the version (without importing the engine)

SESSION is a session's uid, a unique prefix of it, or ``last`` (the newest session). ``sessions`` is a deprecated
name of ``ls`` (it prints the same). ``--insecure`` (before the command): sessions use no CurveZMQ — for
debugging only, and said loudly. The parser is built from :mod:`scalems_like.cli.commands` alone; a command's
module (and the engine with it) is imported when that command runs.

Exit codes: 0 success; 1 failure (an invalid config, a failed build, a task not DONE for run/submit, an
operation refused: delete of a running session; a session or file named that does not exist); 2 usage error (a
malformed, out-of-range, missing or conflicting argument, checked before anything is done; delete without --yes
and no terminal; a session prefix that names more than one session); 130 ``run`` interrupted by Ctrl-C (the
session canceled); 141 stdout's reader closed the pipe (``| head``), quietly. Every command has --help with
examples; user errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable

from scalems_like.cli.commands import INSECURE_VARIABLE, parser
from scalems_like.errors import ConfigError, ScalemsError, UsageError

BROKEN_PIPE = 128 + 13
"""The exit code when stdout's reader closed the pipe early (as a shell reports a command ended by SIGPIPE)."""


def command_resources(arguments: argparse.Namespace) -> int:
    from rich.table import Table

    from scalems_like.cli.console import cli_console
    from scalems_like.resources import config_files, load_all

    everything = load_all()
    files = config_files()
    if arguments.json:
        print(json.dumps({
            name: {"files": [str(path) for path in files[name]], **(
                {"error": str(value)} if isinstance(value, ConfigError)
                else {"scheduler": value.scheduler, "launch_method": value.launch_method,
                      "sandbox": value.sandbox, "description": value.description})}
            for name, value in everything.items()
        }, indent=2))
    else:
        table = Table(title="resources")
        for column in ("name", "scheduler", "launch", "sandbox", "status"):
            table.add_column(column)
        for name, value in everything.items():
            if isinstance(value, ConfigError):
                table.add_row(name, "", "", "", f"[red]{value}[/red]")
            else:
                table.add_row(name, value.scheduler, value.launch_method, value.sandbox, "[green]ok[/green]")
        cli_console().print(table)
    return 1 if any(isinstance(value, ConfigError) for value in everything.values()) else 0


def command_version(arguments: argparse.Namespace) -> int:
    from scalems_like import __version__
    from scalems_like.protocol.messages import PROTOCOL_VERSION

    if arguments.json:
        print(json.dumps({"version": __version__, "protocol": PROTOCOL_VERSION}))
    else:
        print(f"scalems_like {__version__} (protocol {PROTOCOL_VERSION})")
    return 0


def handler_of(arguments: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The command's handler: ``"module:function"`` in the parser, imported now."""
    module, _colon, name = str(arguments.handler).partition(":")
    function: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
    return function


def quiet_broken_pipe() -> int:
    """The reader of stdout went away: end quietly, as a command killed by SIGPIPE would (exit 128 + 13).

    What is left in stdout's buffer can never be written: stdout goes to /dev/null so that Python's flush at exit
    does not fail a second time (Python's documented recipe, see the ``signal`` module's notes on SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    try:
        arguments = parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version (0) or a usage error argparse printed (2): a code, as always
        return exit_.code if isinstance(exit_.code, int) else 2
    if arguments.insecure:
        os.environ[INSECURE_VARIABLE] = "1"  # read where each session opens; the warning comes from there
    try:
        if getattr(arguments, "deprecated_name", None):
            print(f"note: '{arguments.deprecated_name}' is an old name of 'scalems-like ls' (it prints the same)",
                  file=sys.stderr)
        if getattr(arguments, "names_a_session", False) and arguments.session:
            from scalems_like.cli.overview import resolve

            arguments.session = resolve(arguments.session)
        handler = handler_of(arguments)
        if getattr(arguments, "working", None) and not getattr(arguments, "follow", False):
            from scalems_like.cli.console import working

            with working(arguments.working.format(session=arguments.session or "every queued session")):
                code = int(handler(arguments))
        else:
            code = int(handler(arguments))
        sys.stdout.flush()  # here, so that a closed pipe shows now (not as an error at the interpreter's exit)
        return code
    except BrokenPipeError:  # `scalems-like profile S --json | head`: the reader has all it wanted
        return quiet_broken_pipe()
    except UsageError as error:  # a command line that cannot be used as given
        print_error(error)
        return 2
    except ScalemsError as error:  # user errors: a message, never a traceback
        print_error(error)
        return 1


def print_error(error: Exception) -> None:
    from scalems_like.cli.console import cli_console

    cli_console(stderr=True).print(f"[red]error:[/red] {error}", soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
