"""The ``scalems-like`` command (also ``python -m scalems_like``).

    scalems-like resources [--json]              list the resource configs and whether they load
    scalems-like env list|show NAME|add FILE [--name NAME]|rm NAME|build NAME [--resource R]
                                                 named environment profiles
    scalems-like status SESSION [--resource R] [--follow] [--json]
                                                 a session's pilots: bootstrap step, state, sandboxes
    scalems-like sessions [--json]               journaled sessions: state, pilots, task counts
    scalems-like reattach SESSION [--detach]     reconnect to live pilots, collect what finished meanwhile
    scalems-like resume SESSION [--detach]       unfinished tasks of gone pilots run on a new pilot
    scalems-like run [--resource R] [--pilot cores=..,runtime=..] [--env NAME] SCRIPT [ARGS]
                                                 run a workflow script (sl.current_session()), wait, summarize
    scalems-like cache ls|clear [--json]         app results cached in this directory
    scalems-like submit [--resource R] [--nodes N] [--runtime T] [--params FILE] SCRIPT [ARGS]
                                                 the whole session as one batch job; follow its log
    scalems-like ls [--sweep ID] [--json]        sessions, submitted and interactive: state, counts, age
    scalems-like logs SESSION [--task UID] [-f]  a session's log (bootstrap, client output) or a task's output
    scalems-like cancel SESSION | --queued       cancel a session's batch job (or pilots); all queued ones
    scalems-like get SESSION [-o FILE]           archive its sandboxes, outputs and journal (no secret keys)
    scalems-like delete SESSION [--yes]          remove a finished session's sandboxes and records
    scalems-like profile SESSION [--csv FILE] [--json]
                                                 every recorded event of a session (CSV, JSON), or its summary
    scalems-like plot SESSION [--out FILE.png|FILE.html]
                                                 timeline per worker slot, utilisation, pilots' time split
    scalems-like init NAME                       a template workflow project that runs as it is
    scalems-like version                         print the version and the wire protocol version

``--insecure`` (before the command): sessions use no CurveZMQ — for debugging only, and said loudly.

Exit codes: 0 success; 1 failure (an invalid config, a failed build, a task not DONE for run/submit, an
operation refused: delete of a running session; a session or file named that does not exist); 2 usage error (a
malformed, out-of-range, missing or conflicting argument, checked before anything is done; delete without --yes
and no terminal); 130 ``run`` interrupted by Ctrl-C (the session canceled); 141 stdout's reader closed the pipe
(``| head``), quietly. Every command has --help with examples; user errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rich.table import Table

import scalems_like
from scalems_like import protocol
from scalems_like.cli.console import cli_console
from scalems_like.cli.usage import UsageError
from scalems_like.errors import ConfigError, ScalemsError
from scalems_like.protocol.curve import INSECURE_VARIABLE
from scalems_like.resources import config_files, load_all

BROKEN_PIPE = 128 + 13
"""The exit code when stdout's reader closed the pipe early (as a shell reports a command ended by SIGPIPE)."""


def command_resources(arguments: argparse.Namespace) -> int:
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


def command_env(arguments: argparse.Namespace) -> int:
    from scalems_like.cli.environments import run

    return run(arguments)


def command_status(arguments: argparse.Namespace) -> int:
    from scalems_like.cli.status import run

    return run(arguments)


def command_version(_arguments: argparse.Namespace) -> int:
    print(f"scalems_like {scalems_like.__version__} (protocol {protocol.PROTOCOL_VERSION})")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scalems-like", description="A pilot-job workflow engine for HPC clusters.",
                                  epilog="example: scalems-like resources --json")
    top.add_argument("--insecure", action="store_true",
                     help="DEBUGGING ONLY: sessions made by this command use no authentication or encryption "
                          f"(as {INSECURE_VARIABLE}=1)")
    commands = top.add_subparsers(dest="command", required=True)
    resources = commands.add_parser("resources", help="list and validate resource configs",
                                    epilog="example: scalems-like resources")
    resources.add_argument("--json", action="store_true", help="machine-readable output")
    resources.set_defaults(handler=command_resources)
    env = commands.add_parser("env", help="named environment profiles",
                              epilog="examples: scalems-like env add gromacs.yaml; "
                                     "scalems-like env build gromacs --resource slurm")
    env_commands = env.add_subparsers(dest="action", required=True)
    env_commands.add_parser("list", help="list the profiles")
    show = env_commands.add_parser("show", help="print a profile")
    show.add_argument("name")
    add = env_commands.add_parser("add", help="add (or replace) a profile from a YAML file, after validating it")
    add.add_argument("file")
    add.add_argument("--name", help="profile name (default: the file's name)")
    remove = env_commands.add_parser("rm", help="remove a profile")
    remove.add_argument("name")
    build = env_commands.add_parser("build", help="build a profile's environment now, on a short pilot")
    build.add_argument("name")
    build.add_argument("--resource", default="local")
    env.set_defaults(handler=command_env)
    status = commands.add_parser("status", help="a session's pilots: bootstrap step, state, sandboxes",
                                 epilog="example: scalems-like status session.20261123.101500.4242.ab12 --follow")
    status.add_argument("session")
    status.add_argument("--resource", help="where to look (default: every resource)")
    status.add_argument("--follow", action="store_true", help="live view until every pilot has started or failed")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=command_status)
    from scalems_like.cli import init, operations, profile, run, sessions, submit

    sessions.add_commands(commands)
    run.add_command(commands)
    submit.add_command(commands)
    operations.add_commands(commands)
    profile.add_commands(commands)
    init.add_command(commands)
    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=command_version)
    return top


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
    arguments = parser().parse_args(argv)
    if arguments.insecure:
        os.environ[INSECURE_VARIABLE] = "1"  # read where each session opens; the warning comes from there
    try:
        code = int(arguments.handler(arguments))
        sys.stdout.flush()  # here, so that a closed pipe shows now (not as an error at the interpreter's exit)
        return code
    except BrokenPipeError:  # `scalems-like profile S --json | head`: the reader has all it wanted
        return quiet_broken_pipe()
    except UsageError as error:  # a command line that cannot be used as given
        cli_console(stderr=True).print(f"[red]error:[/red] {error}", soft_wrap=True)
        return 2
    except ScalemsError as error:  # user errors: a message, never a traceback
        cli_console(stderr=True).print(f"[red]error:[/red] {error}", soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
