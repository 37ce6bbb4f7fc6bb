"""RADICAL-Pilot itself: imported on first use, its ``bin/`` put on ``PATH``, its session and managers started and
closed within time limits (RP's start-up can fail and then hang: it never hangs us).

RP's start-up runs on a daemon thread that the caller waits for with a deadline; a failure (RP's exception, or
the deadline passing) becomes a :class:`~scalems_like.errors.ScalemsError` with RP's own message and the directory
of RP's logs.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import logging
import multiprocessing
import os
import shutil
import sys
import sysconfig
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from scalems_like.errors import ConfigError, ScalemsError

log = logging.getLogger("scalems_like.radical")

START_LIMIT = float(os.environ.get("SCALEMS_RADICAL_START_LIMIT", "180"))
"""Seconds RP's session and managers may take to start (measured: 30 s on a loaded 2-core machine)."""
CLOSE_LIMIT = float(os.environ.get("SCALEMS_RADICAL_CLOSE_LIMIT", "120"))
"""Seconds RP's session may take to close (measured: 15 s)."""
BRIDGE = "radical-pilot-bridge"

_T = TypeVar("_T")


def import_rp() -> Any:
    """``radical.pilot``, or a ConfigError saying how to install it."""
    try:
        with warnings.catch_warnings():
            # importing radical.pilot 1.103.2 imports rc.process, which reads its VERSION file without closing it
            warnings.filterwarnings("ignore", r"unclosed file <_io.TextIOWrapper name='[^']*/rc/process/VERSION'",
                                    ResourceWarning)
            import radical.pilot as rp
    except ImportError as error:
        raise ConfigError(f"backend 'radical': radical.pilot cannot be imported ({error}); install it with "
                          "pip install 'scalems_like[radical]'") from None
    return rp


def scripts_directory() -> Path | None:
    """Where RP's commands (``radical-pilot-bridge``, ...) are installed: beside this Python's scripts, or where
    radical.pilot's distribution put them; None if not found."""
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    try:
        files = importlib.metadata.distribution("radical.pilot").files or []
        candidates += [Path(str(file.locate())).resolve().parent for file in files if file.name == BRIDGE]
    except importlib.metadata.PackageNotFoundError:
        pass
    for directory in candidates:
        if (directory / BRIDGE).is_file() and os.access(directory / BRIDGE, os.X_OK):
            return directory
    return None


def put_scripts_on_path() -> dict[str, str | None]:
    """RP starts its bridges as commands found on ``PATH``: put their directory first (users need not); and its
    pilots (on ``local.localhost``: ``virtenv_mode: local``) run this virtualenv's Python only if ``VIRTUAL_ENV``
    names it, else the first ``python3`` on PATH, where RP's agent is not installed. Returns the variables' values
    before (restored by :func:`restore_variables` when RP's session closes: native pilots of the same process must
    not inherit them)."""
    before = {name: os.environ.get(name) for name in ("VIRTUAL_ENV", "PATH")}
    if sys.prefix != sys.base_prefix and not os.environ.get("VIRTUAL_ENV"):
        os.environ["VIRTUAL_ENV"] = sys.prefix
    found = shutil.which(BRIDGE)
    directory = scripts_directory()
    if directory is None:
        if found is None:
            raise ScalemsError(f"backend 'radical': RADICAL-Pilot's command {BRIDGE!r} is neither on PATH nor "
                               f"beside this Python ({sys.executable}); is radical.pilot installed in this "
                               "environment? (pip install 'scalems_like[radical]')")
        return before
    entries = os.environ.get("PATH", "").split(os.pathsep)
    if str(directory) not in entries:
        os.environ["PATH"] = os.pathsep.join([str(directory), *entries])
    return before


def restore_variables(before: dict[str, str | None]) -> None:
    """Put back the variables :func:`put_scripts_on_path` changed."""
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def within(limit: float, what: str, logs: Callable[[], str], call: Callable[[], _T]) -> _T:
    """``call()`` on a daemon thread, waited for ``limit`` s; RP's exception or the deadline → ScalemsError
    saying ``what``, RP's message and where its logs are (``logs()``)."""
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # (RP raises what it likes, SystemExit included)
            outcome["error"] = error
        finally:
            finished.set()
    threading.Thread(target=run, name=f"radical: {what}", daemon=True).start()
    if not finished.wait(limit):
        raise ScalemsError(f"backend 'radical': {what} did not finish within {limit:.0f} s; RADICAL-Pilot's logs: "
                           f"{logs()}")
    if "error" in outcome:
        error = outcome["error"]
        raise ScalemsError(f"backend 'radical': {what} failed: {type(error).__name__}: {error}; RADICAL-Pilot's "
                           f"logs: {logs()}") from error
    return outcome["value"]  # type: ignore[no-any-return]


class Runtime:
    """One RP session with its PilotManager and TaskManager, started by :meth:`start` (constructors do no I/O)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        """Where RP writes its session directory (its logs and profiles)."""
        self.rp: Any = None
        self.session: Any = None
        self.pilots: Any = None
        self.tasks: Any = None
        self.children_before: set[Any] = set()
        self.ending_at_exit = False
        self.variables_before: dict[str, str | None] | None = None

    def logs(self) -> str:
        if self.session is not None:
            return str(self.session.path)
        return f"{self.directory}/rp.session.* (the newest)"

    def start(self, on_pilot: Callable[[Any, str], None], on_task: Callable[[Any, str], None]) -> None:
        self.rp = import_rp()
        self.variables_before = put_scripts_on_path()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.children_before = set(multiprocessing.active_children())

        def start() -> None:
            self.session = self.rp.Session(cfg={"base": str(self.directory)})  # (its session directory)
            self.pilots = self.rp.PilotManager(session=self.session)
            self.tasks = self.rp.TaskManager(session=self.session)
            self.pilots.register_callback(on_pilot)
            self.tasks.register_callback(on_task)
        try:
            within(START_LIMIT, "starting RADICAL-Pilot's session", self.logs, start)
        except ScalemsError:
            self.end_children()
            self.restore_variables()
            raise
        log.info("RADICAL-Pilot session %s started (logs: %s)", self.session.uid, self.session.path)

    def close(self) -> None:
        """Close RP's session (its pilots end); a failure or the deadline is logged, never raised or waited out."""
        if self.session is None:
            return
        try:
            within(CLOSE_LIMIT, "closing RADICAL-Pilot's session", self.logs, lambda: self.session.close())
        except ScalemsError as error:
            log.error("%s", error)
        finally:
            self.end_children()
            self.restore_variables()

    def restore_variables(self) -> None:
        if self.variables_before is not None:
            restore_variables(self.variables_before)
            self.variables_before = None

    def end_children(self) -> None:
        """End the processes RP started in this process (a start-up that failed leaves them running, and Python's
        exit would wait for them for ever: the hang RP is known for); again at exit, for those a start-up still
        under way starts later."""
        def end() -> None:
            started = [child for child in multiprocessing.active_children() if child not in self.children_before]
            for child in started:
                child.terminate()
            for child in started:
                child.join(5)
                if child.is_alive():
                    child.kill()
                    child.join(5)
        end()
        if not self.ending_at_exit:
            self.ending_at_exit = True
            atexit.register(end)  # (runs before multiprocessing's own, which waits for them)
