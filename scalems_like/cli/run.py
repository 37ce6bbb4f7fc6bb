"""``scalems-like run [--resource R] [--nodes N --cores C ...] [--env NAME] [--params FILE] SCRIPT [ARGS]``.

The command opens a session and runs SCRIPT as ``__main__`` (with ``sys.argv`` = SCRIPT ARGS...); the session's
pilot is submitted with the script's first task (a script whose app calls the cache serves whole starts none). The
script needs no session code: ``sl.current_session()`` is the session. When the script returns, the command waits
for every task the session holds, prints a summary (tasks by state, failures grouped by reason) and
closes the session. ``--params FILE`` / ``--param KEY=VALUE`` give the script one parameter set
(``sl.load_parameters()``), recorded in the session's journal. SIGTERM (the batch system's cancel) ends the session
as the end of the script would: pilots shut down, the journal closed. Ctrl-C (SIGINT) cancels the session: its
unfinished tasks and its pilots end CANCELED (a local pilot runs in a session of its own, so the terminal's
interrupt reaches only this command), the summary is printed, the exit code is 130.

Exit code: 0 when every task is DONE; 1 when one is not, or the script raised (its traceback is printed, the
session closed, nothing it finished lost: the journal has it); 2 for bad arguments (a malformed ``--cores``,
``--pilot``, ``--param`` or ``--timeout``); 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from scalems_like.adapters.psij_adapter import mark_in_allocation
from scalems_like.analytics.summary import session_summary, summary_tables
from scalems_like.cli.commands import parse_pilot
from scalems_like.cli.console import cli_console
from scalems_like.cli.usage import arguments_checked
from scalems_like.client import cache, joined
from scalems_like.client.pilot import Pilot
from scalems_like.client.session import Session
from scalems_like.client.task import Task
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ConfigError, UsageError, WaitTimeout
from scalems_like.launcher import parameters as workflow_parameters
from scalems_like.launcher.record import read_canceled, record_end
from scalems_like.resources import inside_allocation, load_resource
from scalems_like.states import TaskState

SHAPE_OPTIONS = ("nodes", "cores", "gpus", "runtime", "queue", "account")
"""The pilot's shape as options (``--cores 2``), spelled as ``submit`` spells them."""


def pilot_fields(arguments: argparse.Namespace) -> dict[str, Any]:
    """PilotDescription fields from ``--nodes``, ``--cores``, ... and the deprecated ``--pilot KEY=VALUE,...``
    (a note on stderr gives its spelling as options; a key given both ways is a usage error)."""
    fields = {key: getattr(arguments, key) for key in SHAPE_OPTIONS if getattr(arguments, key) is not None}
    if not arguments.pilot:
        return fields
    old = parse_pilot(arguments.pilot)
    for key in old:
        if key in fields:
            raise UsageError(f"--pilot {arguments.pilot!r} and --{key} {fields[key]}: {key} given twice (give "
                             f"--{key} only)")
    options = " ".join(f"--{key} {value:g}" if isinstance(value, float) else f"--{key} {value}"
                       for key, value in old.items() if key in SHAPE_OPTIONS)
    if options:
        print(f"note: --pilot is deprecated; say {options}", file=sys.stderr, flush=True)
    return {**fields, **old}


INTERRUPTED = 128 + 2
"""The exit code after Ctrl-C (as a shell reports a command ended by SIGINT)."""


class Terminated(BaseException):
    """SIGTERM arrived (scancel, qdel, ``scalems-like cancel``): end the session as after the script."""


_SCRIPT_PART = threading.Event()
"""Set while the script runs and its tasks are waited for: a SIGTERM then ends that part (Terminated). Outside it
— the session closing after the script, or canceling after Ctrl-C — a SIGTERM changes nothing: the close goes on
(its pilots shut down, its journal closed) until the batch system's SIGKILL, if it comes."""


def _terminate(_number: int, _frame: object) -> None:
    if _SCRIPT_PART.is_set():
        _SCRIPT_PART.clear()  # (once)
        raise Terminated()
    print("SIGTERM while the session closes: the close goes on", file=sys.stderr, flush=True)


class Canceled(BaseException):
    """``scalems-like cancel`` asked a submitted session to end (its ``launch.canceled`` record appeared)."""


CANCEL_CHECK_INTERVAL = 0.5
"""Seconds between looks for the ``launch.canceled`` record of a submitted session's own client."""


@contextlib.contextmanager
def watching_for_cancel(uid: str | None) -> Iterator[None]:
    """(a submitted session's client, on the main thread) turn ``scalems-like cancel``'s record into a
    :class:`Canceled` in the main thread (by SIGUSR1), so the session cancels its tasks and pilots itself — tasks
    and pilots end CANCELED, not FAILED as under the batch system's SIGTERM — before its batch job ends."""
    if uid is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    stop = threading.Event()
    closing = False

    def cancel(_number: int, _frame: object) -> None:  # (runs on the main thread, between two bytecodes)
        if not closing:  # once the block ends, a late signal changes nothing
            raise Canceled()

    def watch() -> None:
        while not stop.wait(CANCEL_CHECK_INTERVAL):
            if read_canceled(uid) is not None:
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
                return
    previous = signal.signal(signal.SIGUSR1, cancel)
    watcher = threading.Thread(target=watch, name="cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        closing = True
        stop.set()
        watcher.join()
        signal.signal(signal.SIGUSR1, previous)


@contextlib.contextmanager
def parameter_set(arguments: argparse.Namespace) -> Iterator[dict[str, object] | None]:
    """The script's parameter set from --params/--param, put where ``sl.load_parameters()`` reads it."""
    if not arguments.params and not arguments.param:
        yield None
        return
    sets = workflow_parameters.parameter_sets(arguments.params, arguments.param)
    if len(sets) != 1:
        raise UsageError(f"--params {arguments.params!r}: {len(sets)} parameter sets; run takes one "
                          f"(scalems-like submit runs a sweep, one session per set)")
    with tempfile.TemporaryDirectory(prefix="scalems-like-params.") as directory:
        path = workflow_parameters.write_set(sets[0], Path(directory) / "parameters.json")
        saved = os.environ.get(workflow_parameters.VARIABLE)
        os.environ[workflow_parameters.VARIABLE] = str(path)
        try:
            yield sets[0]
        finally:
            if saved is None:
                os.environ.pop(workflow_parameters.VARIABLE, None)
            else:
                os.environ[workflow_parameters.VARIABLE] = saved


def run(arguments: argparse.Namespace) -> int:
    script = Path(arguments.script)
    if not script.is_file():
        raise ConfigError(f"script {str(script)!r}: no such file")
    fields = pilot_fields(arguments)
    if arguments.env:
        fields["environment"] = arguments.env
    if arguments.backend != "native" and arguments.in_allocation:
        raise UsageError(f"--backend {arguments.backend}: a submitted session runs on the native backend only")
    resource = arguments.resource or ("local.localhost" if arguments.backend == "radical" else "local")
    with arguments_checked("--pilot" if arguments.pilot else None):
        description = PilotDescription(resource=resource, **fields)
    if arguments.no_cache:
        os.environ[cache.NO_CACHE_VARIABLE] = "1"
    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    interrupt = signal.getsignal(signal.SIGINT)
    code = 1
    try:
        with parameter_set(arguments) as parameters:
            code = run_session(arguments, script, description, parameters)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, interrupt)
        if arguments.session:
            record_end(arguments.session, code)
    return code


def run_session(arguments: argparse.Namespace, script: Path, description: PilotDescription,
                parameters: dict[str, object] | None) -> int:
    console = cli_console(stderr=True)
    ended = "returned"  # how the script's part ended: returned, failed (raised, SIGTERM) or interrupted (Ctrl-C)
    if not arguments.in_allocation:
        mention_pilots_left_running(console)
    session = RunSession(arguments.session, description, console, arguments.backend)
    console.print(f"session {session.uid}: pilot on {description.resource} when the first task needs it; running "
                  f"{script}", soft_wrap=True)
    cached_before = cache.hits()
    if arguments.in_allocation:
        session.use_resource(inside_allocation(load_resource(description.resource)))
        mark_in_allocation()  # (its local pilots stay in the batch job's process group)
    with session:
        if parameters is not None:
            session.record_info("parameters", json.dumps(parameters, sort_keys=True))
        started = time.monotonic()
        try:
            try:
                _SCRIPT_PART.set()
                with watching_for_cancel(arguments.session if arguments.in_allocation else None):
                    if not run_and_wait(session, arguments, script, console):
                        ended = "failed"
            finally:  # (before the handlers below: a SIGTERM while they cancel changes nothing)
                _SCRIPT_PART.clear()
        except Terminated:
            ended = "failed"
            console.print("[red]terminated (SIGTERM)[/red]: the session ends, canceling what is left")
        except KeyboardInterrupt:
            ended = "interrupted"
            cancel_on_interrupt(session, console, "interrupted (Ctrl-C)")
        except Canceled:
            ended = "interrupted"
            cancel_on_interrupt(session, console, "canceled (scalems-like cancel)")
        tasks = session.tasks
        elapsed = time.monotonic() - started
    print_summary(session.uid, tasks, elapsed, cli_console(), from_cache=cache.hits() - cached_before)
    if ended == "interrupted":
        return INTERRUPTED
    return 0 if ended == "returned" and all(task.state is TaskState.DONE for task in tasks) else 1


class RunSession(Session):
    """``run``'s session: its pilot is submitted with the first task, so that a script whose calls the cache serves
    whole starts no pilot. Until then ``session.pilots`` is empty."""

    def __init__(self, uid: str | None, description: PilotDescription, console: Console,
                 backend: str = "native") -> None:
        super().__init__(uid, backend=backend)
        self.pilot_description = description
        self.console = console
        self.first_pilot_lock = threading.Lock()
        self.first_pilot: Pilot | None = None

    def submit_tasks(self, descriptions: Iterable[TaskDescription]) -> list[Task]:
        descriptions = list(descriptions)
        if descriptions:
            self.start_pilot()
        return super().submit_tasks(descriptions)

    def start_pilot(self) -> Pilot:
        """The run's pilot, submitted now if it was not yet."""
        with self.first_pilot_lock:
            if self.first_pilot is None:
                self.first_pilot = self.submit_pilot(self.pilot_description)
                resource = self.pilot_description.resource
                self.console.print(f"pilot {self.first_pilot.uid} on {resource} (for the first task)", soft_wrap=True)
            return self.first_pilot


def mention_pilots_left_running(console: Console) -> None:
    """A line per recent session whose client is gone but whose pilots may still hold cores (until their grace
    period ends), saying how to collect or end it."""
    from scalems_like.cli.overview import left_running

    for uid, client, pilots in left_running():
        held = ", ".join(f"{pilot['pilot']} on {pilot['resource']}" for pilot in pilots)
        console.print(f"note: session {uid} ({client}) may still hold {held}: its agents wait for a client until "
                      f"their grace period ends; `scalems-like reattach {uid}` collects its results, "
                      f"`scalems-like cancel {uid}` ends it", soft_wrap=True, markup=False, highlight=False)


def run_and_wait(session: RunSession, arguments: argparse.Namespace, script: Path, console: Console) -> bool:
    """Run the script, wait for its tasks (up to ``--timeout``); False if the script failed.

    Meanwhile the session is the script's ``sl.Session()`` too, and the run's pilot its first fitting
    ``submit_pilot`` (:mod:`scalems_like.client.joined`)."""
    with joined.held_by_run(session, session.pilot_description, session.start_pilot):
        if not run_script(script, arguments.arguments, console):
            return False
        try:
            session.wait_tasks(timeout=arguments.timeout, progress=True)
        except WaitTimeout as error:
            console.print(f"[red]{error}[/red]; the session ends, canceling what is left", soft_wrap=True)
    return True


def cancel_on_interrupt(session: Session, console: Console, why: str) -> None:
    """Ctrl-C (or ``scalems-like cancel``): cancel the unfinished tasks and the pilots (the session's close then
    waits for them to end).

    Further Ctrl-Cs are ignored until the session is closed (``run`` restores the handler): a second interrupt
    in the middle of the close would leave the pilots running with no client.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    console.print(f"[red]{why}[/red]: canceling the session's tasks and pilots", soft_wrap=True)
    session.cancel_tasks([task for task in session.tasks if not task.state.is_final])
    for pilot in session.pilots:
        if not pilot.state.is_final:
            pilot.cancel()


def run_script(script: Path, argv: list[str], console: Console) -> bool:
    """Run the workflow script as ``__main__``; False when it failed (its traceback printed)."""
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code in (None, 0)
    except (Terminated, Canceled, KeyboardInterrupt):  # the session's end, not the script's failure
        raise
    except BaseException as error:  # the script's own failure: report it, then end the session as usual
        console.print("[red]the script raised:[/red]", soft_wrap=True)
        console.print(script_traceback(error, script), soft_wrap=True, markup=False, highlight=False)
        return False
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return True


def script_traceback(error: BaseException, script: Path) -> str:
    """The traceback of ``error`` from the script's own first frame on (not this command's or runpy's)."""
    frames = error.__traceback__
    target = script.resolve()
    while frames is not None and Path(frames.tb_frame.f_code.co_filename).resolve() != target:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames or error.__traceback__)).rstrip()


def print_summary(uid: str, tasks: list[Any], elapsed: float | None, console: Console, *,
                  from_cache: int = 0) -> None:
    """Tasks by final state, task times, pilot utilisation and time split, the slowest tasks, failures by reason
    (read from the session's journal: call it once the session is closed). ``elapsed``: the seconds this command
    ran the session for; None (reattach, resume): the session's own time, first submission to last end.
    ``from_cache``: the app calls the cache served (no task)."""
    summary = session_summary(uid, tasks=len(tasks))
    seconds = summary["makespan"] if elapsed is None else elapsed
    cached = f" and {from_cache} from cache" if from_cache else ""
    console.print(f"{uid}: {len(tasks)} task(s){cached} in {seconds:.1f} s"
                  + (" (the session's: first submission to last end)" if elapsed is None else ""), soft_wrap=True)
    for table in summary_tables(summary):
        console.print(table)
    kept = [task.result_file for task in tasks if task.result_file is not None]
    if kept:  # (results above the resource's results_in_sandbox_above)
        console.print(f"{len(kept)} large return value(s) kept as files in their task sandboxes, read when asked "
                      f"for (e.g. {kept[0]})", soft_wrap=True)


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
    cli_console().print(table)
    return 0

