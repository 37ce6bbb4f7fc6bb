"""The ``scalems-like`` command line: every command's arguments, and where its handler lives.

Built with argparse and this package's light modules only: a handler is named as ``"module:function"`` and
imported when its command runs, so ``--help``, ``--version`` and a usage error cost no more than starting Python
(the client, ZeroMQ, psij and rich are imported by the commands that use them).

Commands that can take seconds (``status``, ``cancel``, ``get``, ``plot``) name a ``working`` text: a spinner
shows it on stderr while they work, on a terminal only. A session is named by its whole uid, a unique prefix of it,
or ``last`` (the newest); see :func:`scalems_like.cli.overview.resolve`. A pilot's shape is said the same way to
``run`` and ``submit``: ``--nodes N --cores C --gpus G --runtime SECONDS --queue Q --account A``.
"""

from __future__ import annotations

import argparse
from typing import Any

from scalems_like import __version__
from scalems_like.cli.usage import key_value, positive_int, positive_seconds, whole_number
from scalems_like.errors import UsageError

INSECURE_VARIABLE = "SCALEMS_LIKE_INSECURE"
"""As :data:`scalems_like.protocol.curve.INSECURE_VARIABLE` (not imported here: it imports ZeroMQ)."""
CACHE_DIRECTORY = ".scalems-like-cache"
"""As :data:`scalems_like.client.cache.DIRECTORY` (not imported here: it imports cloudpickle)."""
SESSION_HELP = "a session uid, a unique prefix of one, or 'last' (the newest)"
RAW = argparse.RawDescriptionHelpFormatter

PILOT_KEYS: dict[str, type] = {"cores": int, "gpus": int, "nodes": int, "runtime": float, "queue": str,
                               "account": str, "project": str}
"""What the deprecated ``run --pilot KEY=VALUE,...`` may set, and how its text is read."""


def parse_pilot(text: str) -> dict[str, Any]:
    """``cores=4,runtime=3600,queue=debug`` → PilotDescription fields; errors name the key and the value."""
    fields: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = item.partition("=")
        if not separator or key not in PILOT_KEYS:
            raise UsageError(f"--pilot {item!r}: expected KEY=VALUE with KEY one of {', '.join(PILOT_KEYS)}")
        try:
            fields[key] = PILOT_KEYS[key](value)
        except ValueError:
            raise UsageError(f"--pilot {key}={value!r}: expected {PILOT_KEYS[key].__name__}") from None
    return fields


def add_shape(command: argparse.ArgumentParser, *, runtime: float, what: str, gpus: bool) -> None:
    """The pilot's shape, spelled alike for ``run`` and ``submit``."""
    command.add_argument("--nodes", type=positive_int, help=f"nodes of the {what} (default: 1)")
    command.add_argument("--cores", type=positive_int, help="cores per node (default: the resource's, or whole "
                                                            "nodes)")
    if gpus:
        command.add_argument("--gpus", type=whole_number, help="GPUs per node (default: 0)")
    command.add_argument("--runtime", type=positive_seconds, help=f"walltime in seconds (default: {runtime:.0f})")
    command.add_argument("--queue", help="batch queue / partition")
    command.add_argument("--account", help="account (project) charged")


def session_argument(command: argparse.ArgumentParser, **options: Any) -> None:
    """SESSION: a uid, a unique prefix or ``last``, resolved to the uid before the command's handler runs."""
    command.add_argument("session", help=SESSION_HELP, **options)
    command.set_defaults(names_a_session=True)


def add_workflow_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = commands.add_parser(
        "run", help="run a workflow script in a new session and pilot; wait for its tasks; summarize",
        epilog="example: scalems-like run --resource slurm --nodes 2 --runtime 3600 ensemble.py 100")
    run.add_argument("--resource", help="where the pilot runs (default: local; with --backend radical, a "
                                        "RADICAL-Pilot resource, default local.localhost)")
    run.add_argument("--backend", choices=("native", "radical"), default="native",
                     help="what runs the pilot and tasks: scalems_like's agent (native, the default) or "
                          "RADICAL-Pilot (radical: pip install 'scalems_like[radical]')")
    add_shape(run, runtime=600, what="pilot", gpus=True)
    run.add_argument("--pilot", help="deprecated: KEY=VALUE,... with KEY in "
                                     f"{', '.join(PILOT_KEYS)} (say --cores 2 --runtime 300 instead)")
    run.add_argument("--env", help="a named environment profile for the pilot (scalems-like env list)")
    run.add_argument("--timeout", type=positive_seconds, help="give up waiting for the tasks after this many "
                                                              "seconds (> 0)")
    run.add_argument("--no-cache", action="store_true",
                     help=f"run every app call, even those with a result in ./{CACHE_DIRECTORY}")
    run.add_argument("--params", metavar="FILE",
                     help="the script's parameters (YAML/JSON mapping), read with sl.load_parameters()")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                     help="one parameter (a YAML scalar), over the file's; repeatable")
    run.add_argument("--session", help=argparse.SUPPRESS)  # submit: the session uid chosen at submission
    run.add_argument("--in-allocation", action="store_true", help=argparse.SUPPRESS)  # submit: fork the pilot
    run.add_argument("script")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="passed to the script as sys.argv[1:]")
    run.set_defaults(handler="scalems_like.cli.run:run")
    cached = commands.add_parser("cache", help=f"app results cached in this directory (./{CACHE_DIRECTORY})",
                                 epilog="example: scalems-like cache ls")
    cached.add_argument("action", choices=["ls", "clear"])
    cached.add_argument("--json", action="store_true", help="machine-readable output")
    cached.set_defaults(handler="scalems_like.cli.run:run_cache")
    submit = commands.add_parser(
        "submit", help="submit a whole session (client and agent) as one batch job; follow its log",
        formatter_class=RAW, epilog="examples:\n"
        "  scalems-like submit --resource slurm --nodes 2 --runtime 3600 workflow.py\n"
        "  scalems-like submit --params sweep.yaml --param steps=500 workflow.py   # one session per set\n"
        "  scalems-like submit --resource local --detach workflow.py && scalems-like ls")
    submit.add_argument("--resource", default="local", help="where the session runs (default: local)")
    add_shape(submit, runtime=3600, what="allocation", gpus=False)
    submit.add_argument("--env", help="a named environment profile for the session (scalems-like env list)")
    submit.add_argument("--project", help="the project directory to bundle (default: the current directory)")
    submit.add_argument("--params", metavar="FILE", help="parameters (YAML/JSON): a mapping, or a list of "
                                                         "mappings for a sweep (one session per set)")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                        help="one parameter (a YAML scalar), over the file's in every set; repeatable")
    submit.add_argument("--detach", action="store_true", help="print the session id and return at once")
    submit.add_argument("--json", action="store_true", help="machine-readable output (implies --detach)")
    submit.add_argument("script", help="the workflow script, inside the project directory")
    submit.add_argument("arguments", nargs=argparse.REMAINDER, help="passed to the script as sys.argv[1:]")
    submit.set_defaults(handler="scalems_like.cli.submit:run")
    init = commands.add_parser("init", help="create a template workflow project that runs as it is",
                               epilog="example: scalems-like init my-ensemble")
    init.add_argument("name", help="the project directory to create (must not exist, or be empty)")
    init.set_defaults(handler="scalems_like.cli.init:run")


def add_session_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, hidden in (("ls", False), ("sessions", True)):
        listing = commands.add_parser(
            name, formatter_class=RAW, help=argparse.SUPPRESS if hidden else
            "sessions (submitted and interactive): state, resource, pilots, task counts, age",
            epilog="examples:\n  scalems-like ls\n  scalems-like ls --sweep sweep.20261123.101500.4242 --json")
        listing.add_argument("--sweep", help="only the sessions of this sweep (as printed by submit)")
        listing.add_argument("--json", action="store_true", help="machine-readable output")
        listing.set_defaults(handler="scalems_like.cli.operations:run_ls", deprecated_name=hidden and name)
    status = commands.add_parser("status", help="a session's pilots: bootstrap step, state, sandboxes",
                                 epilog="example: scalems-like status last --follow")
    session_argument(status)
    status.add_argument("--resource", help="where to look (default: every resource)")
    status.add_argument("--follow", action="store_true", help="live view until every pilot has started or failed")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(working="reading {session}", handler="scalems_like.cli.status:run")
    for name, text in (
            ("reattach", "reconnect to a session's live pilots and collect what finished meanwhile"),
            ("resume", "run a session's unfinished tasks again on a new pilot (finished ones never re-run)")):
        command = commands.add_parser(name, help=text, epilog=f"example: scalems-like {name} last")
        session_argument(command)
        command.add_argument("--detach", action="store_true",
                             help="collect what is there, then leave the pilots running (default: wait for every "
                                  "task, then close the session)")
        command.set_defaults(handler=f"scalems_like.cli.sessions:run_{name}")
    add_operation_commands(commands)
    add_profile_commands(commands)


def add_operation_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    logs = commands.add_parser("logs", help="a session's log (bootstrap steps, the client's output), or a task's",
                               formatter_class=RAW, epilog="examples:\n  scalems-like logs last -f\n"
                               "  scalems-like logs SESSION --task task.000003")
    session_argument(logs)
    logs.add_argument("--task", help="show this task's stdout and stderr files instead")
    logs.add_argument("-f", "--follow", action="store_true", help="go on printing until the session ends (Ctrl-C "
                                                                  "stops following; the session goes on)")
    logs.add_argument("--json", action="store_true", help="machine-readable output (not with --follow)")
    logs.set_defaults(handler="scalems_like.cli.operations:run_logs")
    cancel = commands.add_parser("cancel", help="cancel a session's batch job (submitted) or pilots (interactive)",
                                 formatter_class=RAW, epilog="examples:\n  scalems-like cancel SESSION\n"
                                 "  scalems-like cancel --queued   # every submitted session still queued")
    session_argument(cancel, nargs="?")
    cancel.add_argument("--queued", action="store_true", help="cancel every submitted session that is still queued")
    cancel.add_argument("--json", action="store_true", help="machine-readable output")
    cancel.set_defaults(working="canceling {session}", handler="scalems_like.cli.operations:run_cancel")
    get = commands.add_parser("get", help="archive a session's sandboxes, outputs and journal into this directory",
                              formatter_class=RAW, epilog="example:\n  scalems-like get SESSION "
                              "&& tar xzf SESSION.tar.gz SESSION/sandbox/launcher/project")
    session_argument(get)
    get.add_argument("--output", "-o", help="the archive's path (default: ./SESSION.tar.gz)")
    get.add_argument("--force", action="store_true", help="replace an existing archive")
    get.add_argument("--json", action="store_true", help="machine-readable output")
    get.set_defaults(working="archiving {session}", handler="scalems_like.cli.operations:run_get")
    delete = commands.add_parser("delete", help="remove a finished session: its sandboxes and its records",
                                 formatter_class=RAW, epilog="example:\n  scalems-like delete SESSION --yes")
    session_argument(delete)
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask")
    delete.add_argument("--json", action="store_true", help="machine-readable output")
    delete.set_defaults(handler="scalems_like.cli.operations:run_delete")


def add_profile_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    profile = commands.add_parser(
        "profile", help="a session's recorded events (task states, bootstrap steps, workers): CSV, JSON, summary",
        epilog="examples: scalems-like profile last --csv profile.csv; scalems-like profile SESSION (the summary)")
    session_argument(profile)
    profile.add_argument("--csv", metavar="FILE", help="write every event as a CSV row to FILE")
    profile.add_argument("--json", action="store_true", help="print every event as JSON")
    profile.set_defaults(handler="scalems_like.cli.profile:run_profile")
    plot = commands.add_parser(
        "plot", help="draw a session: timeline per worker slot, utilisation, each pilot's time split",
        epilog="examples: scalems-like plot last --out run.png; ... --out run.html (a page with the figure and "
               "the summary)")
    session_argument(plot)
    plot.add_argument("--out", metavar="FILE", help="FILE.png or FILE.html (default: SESSION.png here)")
    plot.add_argument("--json", action="store_true", help="print what was written as JSON")
    plot.set_defaults(working="drawing {session}", handler="scalems_like.cli.profile:run_plot")


def add_setup_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    resources = commands.add_parser("resources", help="list and validate resource configs",
                                    epilog="example: scalems-like resources")
    resources.add_argument("--json", action="store_true", help="machine-readable output")
    resources.set_defaults(handler="scalems_like.cli.main:command_resources")
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
    env.set_defaults(handler="scalems_like.cli.environments:run")
    login = commands.add_parser(
        "login", help="open the ssh connection to a remote resource (a password or MFA prompt may appear here, "
                      "never later); its sessions and commands use it", formatter_class=RAW,
        epilog="examples:\n  scalems-like login perlmutter-cpu-remote\n"
               "  scalems-like login perlmutter-cpu-remote --check   # exit 0 if open\n"
               "  scalems-like login perlmutter-cpu-remote --close")
    login.add_argument("resource", help="a resource with `login` set (scalems-like resources)")
    action = login.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="say whether the connection is open (exit 1 if not)")
    action.add_argument("--close", action="store_true", help="close the connection")
    login.set_defaults(handler="scalems_like.cli.login:run")
    version = commands.add_parser("version", help="print the version and the wire protocol version")
    version.add_argument("--json", action="store_true", help="machine-readable output")
    version.set_defaults(handler="scalems_like.cli.main:command_version")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scalems-like", description="A pilot-job workflow engine for HPC clusters.",
                                  epilog="examples: scalems-like ls; scalems-like status last; "
                                         "scalems-like COMMAND --help")
    top.add_argument("--version", action="version", version=f"scalems_like {__version__}")
    top.add_argument("--insecure", action="store_true",
                     help="DEBUGGING ONLY: sessions made by this command use no authentication or encryption "
                          f"(as {INSECURE_VARIABLE}=1)")
    commands = top.add_subparsers(dest="command", required=True)
    add_setup_commands(commands)
    add_session_commands(commands)
    add_workflow_commands(commands)
    # argparse lists a hidden old name (help=SUPPRESS) as "==SUPPRESS==" in --help: leave it out of the listing
    commands._choices_actions = [action for action in commands._choices_actions if action.help != argparse.SUPPRESS]
    commands.metavar = "{" + ",".join(action.dest for action in commands._choices_actions) + "}"
    return top
