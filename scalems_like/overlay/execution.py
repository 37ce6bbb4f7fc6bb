"""How a worker runs one task: a Python function in-process, or an executable as a subprocess.

Both produce a *task update* (see :mod:`scalems_like.protocol.messages`) for the task's final state.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

import cloudpickle

from scalems_like.agent.config import write_private_file
from scalems_like.agent.launch import mpi_command
from scalems_like.errors import CancelInterrupt, TaskTimeout
from scalems_like.protocol.tasks import TaskMapping, TaskUpdate
from scalems_like.states import TaskState

RESULT_FILE = "return_value.pickle"
"""Where a large return value stays, in its task sandbox (see :func:`keep_return_value`)."""
MAX_CAPTURED_OUTPUT = 1024 * 1024
"""Characters of a function's printed output kept and sent back to the client (the rest is counted, not kept)."""


class BoundedOutput(io.TextIOBase):
    """What a function prints: the first ``limit`` characters, and how many more there were."""

    def __init__(self, limit: int = MAX_CAPTURED_OUTPUT) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0
        self.limit = limit

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters printed, not kept]\n"
        return text

_function_cache: dict[bytes, Any] = {}


def load_function(payload: bytes) -> Any:
    """Unpickle a function, once per distinct payload."""
    function = _function_cache.get(payload)
    if function is None:
        if len(_function_cache) > 256:
            _function_cache.clear()
        function = _function_cache[payload] = cloudpickle.loads(payload)
    return function


def run_function(task: TaskMapping, update: TaskUpdate) -> None:
    """Call the task's function; fill ``update`` with DONE + return value, or FAILED + exception."""
    output = BoundedOutput()
    try:
        function = load_function(task["function"])
        args, kwargs = cloudpickle.loads(task["call_arguments"])
        with contextlib.redirect_stdout(output):
            result = function(*args, **kwargs)
        _set_return_value(update, result)
    except TaskTimeout:
        update["state"] = TaskState.FAILED.value
        update["reason"] = f"timed out after {task['timeout']} s"
    except CancelInterrupt:
        update["state"] = TaskState.CANCELED.value
        update["reason"] = "canceled while running"
    except BaseException as error:  # a task may raise anything, SystemExit included
        update["state"] = TaskState.FAILED.value
        update["reason"] = f"raised {type(error).__name__}: {error}"
        update["traceback"] = _user_traceback(error)
        with contextlib.suppress(Exception):  # unpicklable exceptions travel as text only
            update["exception"] = cloudpickle.dumps(error)
    text = output.getvalue()
    if text:
        update["output"] = text


def _set_return_value(update: TaskUpdate, result: Any) -> None:
    """DONE with the pickled value, or FAILED saying the value (not the function) is what could not be sent."""
    try:
        update["return_value"] = cloudpickle.dumps(result)
    except Exception as error:
        update["state"] = TaskState.FAILED.value
        update["reason"] = (f"returned a {type(result).__name__} that cannot be sent back to the client "
                            f"({type(error).__name__}: {error}); the function itself ran to its end")
        return
    update["state"] = TaskState.DONE.value


def _user_traceback(error: BaseException) -> str:
    """The traceback as the user's own call would show it: from the task's function on (this module's frames,
    the worker's own, are left out)."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames or error.__traceback__))


class RunningExecutable:
    """An executable task started in its own process group, with output files in the task sandbox."""

    def __init__(self, task: TaskMapping, process: subprocess.Popen[bytes], started: float, pidfd: int) -> None:
        """Hold a started process and the pidfd that tells when it ends (see :meth:`open`); no I/O."""
        self.task = task
        self.process = process
        self.started = started
        timeout = task.get("timeout")
        self.deadline = started + timeout if timeout else None
        self.pidfd = pidfd
        self.ended_by: str | None = None  # "timeout" | "cancel"
        self.kill_at: float | None = None

    @classmethod
    def open(cls, task: TaskMapping, process: subprocess.Popen[bytes], started: float) -> RunningExecutable:
        """Watch ``process``: opens its pidfd (closed by :meth:`finish`)."""
        return cls(task, process, started, os.pidfd_open(process.pid))

    def terminate(self, why: str, grace: float = 2.0) -> None:
        """SIGTERM the process group now, SIGKILL it after ``grace`` seconds (see :meth:`escalate`)."""
        if self.ended_by is None:
            self.ended_by = why
        self._signal(signal.SIGTERM)
        self.kill_at = time.time() + grace

    def escalate(self) -> None:
        self._signal(signal.SIGKILL)
        self.kill_at = None

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, number)

    def finish(self, update: TaskUpdate) -> None:
        """Reap the process and fill ``update`` with its final state."""
        exit_code = self.process.wait()
        os.close(self.pidfd)
        # a process killed by a signal reports -N; report it as the shell does, 128 + N
        update["exit_code"] = exit_code if exit_code >= 0 else 128 - exit_code
        if self.ended_by == "timeout":
            update["state"] = TaskState.FAILED.value
            update["reason"] = f"timed out after {self.task['timeout']} s (process group killed)"
        elif self.ended_by == "cancel":
            update["state"] = TaskState.CANCELED.value
            update["reason"] = "canceled while running (process group killed)"
        elif exit_code == 0:
            update["state"] = TaskState.DONE.value
        else:
            update["state"] = TaskState.FAILED.value
            update["reason"] = exit_reason(exit_code)


def exit_reason(exit_code: int) -> str:
    """Why an executable that ended by itself failed (``exit_code`` as Popen reports it: -N for signal N)."""
    return f"exited with code {exit_code}" if exit_code > 0 else f"killed by signal {signal.Signals(-exit_code).name}"


SIGTERM_REASONS = frozenset({exit_reason(-signal.SIGTERM), exit_reason(128 + signal.SIGTERM)})
"""Reasons of an executable that ended by a SIGTERM its worker did not send (a timeout or a cancel says so)."""


def ended_by_foreign_sigterm(update: TaskUpdate) -> bool:
    """A FAILED update of an executable ended by a SIGTERM from outside (a batch system ending the job, say)."""
    return update.get("state") == TaskState.FAILED and update.get("reason") in SIGTERM_REASONS


def _resolve(sandbox: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else sandbox / path


LAUNCHER_VARIABLES = ("SLURM_", "PMI", "PMIX_", "OMPI_", "HYDRA_", "I_MPI_", "PALS_", "PBS_")
"""Prefixes of the variables an MPI launcher needs to start ranks inside the allocation (srun without
``SLURM_JOB_ID`` asks for a new allocation)."""


def launcher_environment(base: dict[str, str]) -> dict[str, str]:
    """What an MPI task that inherits no environment still gets: PATH and the allocation's launcher variables
    (the launcher passes them on to the ranks: the one deviation from "the task's variables only")."""
    return {key: value for key, value in base.items() if key == "PATH" or key.startswith(LAUNCHER_VARIABLES)}


def start_executable(task: TaskMapping, mpi_launcher: str, base_environment: dict[str, str]
                     ) -> RunningExecutable | str:
    """Start an executable task; returns the running process, or the reason it could not start."""
    sandbox = Path(task["sandbox"])
    sandbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    environment = base_environment
    if task.get("inherit_environment") is False:  # the task's variables only (psij's inherit_environment)
        environment = launcher_environment(base_environment) if task["ranks"] > 1 else {}
    if task.get("environment") or task.get("gpu_ids"):
        environment = {**environment, **(task.get("environment") or {})}
        if task.get("gpu_ids"):
            environment["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in task["gpu_ids"])
    argv = [task["executable"], *task["arguments"]]
    if task["ranks"] > 1:
        prefix = mpi_command(mpi_launcher, task)  # type: ignore[arg-type]  # (lead: mpi_command takes a TaskMapping)
        if not prefix:
            return f"ranks={task['ranks']} needs an MPI launcher, and this resource has mpi_launcher: none"
        argv = [*prefix, *argv]
    if task.get("wrapper"):  # runs once around the whole launch (MPI launcher included)
        argv = [*task["wrapper"], *argv]
    stderr_path = _resolve(sandbox, task["stderr"])
    stdin_name = task.get("stdin")
    try:
        with open(_resolve(sandbox, task["stdout"]), "wb") as stdout, open(stderr_path, "wb") as stderr, \
                (open(_resolve(sandbox, stdin_name), "rb") if stdin_name else open(os.devnull, "rb")) as stdin:
            started = time.time()
            process = subprocess.Popen(
                argv, stdin=stdin, stdout=stdout, stderr=stderr, env=environment, close_fds=True,
                cwd=task.get("working_directory") or sandbox, start_new_session=True,
            )
    except OSError as error:
        reason = f"cannot start {argv[0]!r}: {error.strerror or error}"
        with contextlib.suppress(OSError):
            stderr_path.write_text(reason + "\n")
        return reason
    return RunningExecutable.open(task, process, started)


def keep_return_value(task: TaskMapping, update: TaskUpdate) -> None:
    """A DONE function's value larger than the task's ``results_in_sandbox_above`` leaves ``update`` for
    :data:`RESULT_FILE` in the task sandbox (written atomically, owner-only); the update keeps the reference (see
    :data:`scalems_like.protocol.messages.RESULT_FILE_TYPES`). A file that cannot be written fails the task,
    saying where and why. Interrupted (a timeout or cancel tick), the update keeps its value: it is DONE."""
    pickled = update.get("return_value")
    above = task.get("results_in_sandbox_above")
    if pickled is None or above is None or len(pickled) <= above:
        return
    path = Path(task["sandbox"]) / RESULT_FILE
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_file(path, pickled)
    except OSError as error:
        del update["return_value"]
        update["state"] = TaskState.FAILED.value
        update["reason"] = f"its return value ({len(pickled)} bytes) could not be written to {path}: {error}"
        return
    update["return_value_file"] = {"name": RESULT_FILE, "bytes": len(pickled),
                                   "sha256": hashlib.sha256(pickled).hexdigest()}
    del update["return_value"]
