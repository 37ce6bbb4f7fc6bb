"""Every exception scalems_like raises, in one tree.

    ScalemsError                  base of everything raised here
    ├── ConfigError               a resource config or description is invalid (names file/field and value)
    │   └── UsageError            a ``scalems-like`` command line cannot be used as given (exit code 2)
    ├── ProtocolError             a wire message is malformed
    │   └── ProtocolVersionError  ... or from another protocol version (another release)
    ├── CommandError              an external command failed (carries argv, exit code, stdout, stderr)
    ├── SshError                  ssh to a remote cluster failed (names resource, destination, ssh's message)
    ├── SubmitError               a pilot job could not be submitted (``transient`` says if a retry may work)
    ├── StagingError              a staging directive could not be carried out (names it)
    ├── SessionInUse              another live client process holds the session (reattach, resume, cancel)
    ├── PilotFailed               a pilot ended FAILED; ``failure`` says why (step, exit code, output tail)
    ├── PilotDegraded             ``Pilot.wait_ready``: nodes out of the schedule leave fewer cores than asked for
    ├── ResultFileError           a return value kept in its task sandbox is gone or changed; names the file
    ├── TaskFailed                a task ended FAILED or CANCELED; raised by ``Task.result()``
    │   ├── TaskWasCanceled       ... CANCELED (also a ``concurrent.futures.CancelledError``, as a Future's)
    │   └── DependencyFailed      an app's task was never submitted: one of its input futures did not end DONE
    ├── WaitTimeout               a ``wait`` ran out of time (also a :class:`TimeoutError`)
    └── NoPilot                   a wait without a timeout on tasks while the session has no pilot to run them

    RemoteError (an Exception)    stands for a function task's exception that could not travel back

    TaskInterrupt (a BaseException, like KeyboardInterrupt: a task's ``except Exception`` does not swallow it)
    ├── TaskTimeout               a function task ran longer than its ``timeout`` (raised inside the worker)
    └── CancelInterrupt           a running function task was canceled (raised inside the worker; not exported:
                                  users meet a canceled task as TaskWasCanceled)

Raised elsewhere by design: ``SessionHeld`` (:mod:`scalems_like.psij_executor.sessions`) is a psij
``SubmitException``, as psij's callers expect of an executor; ``scalems-like run``'s ``Terminated`` and
``Canceled`` (:mod:`scalems_like.cli.run`) are signals turned into BaseExceptions, never raised to a user.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence


class ScalemsError(Exception):
    """Base class of all scalems_like errors."""


class ConfigError(ScalemsError, ValueError):
    """Invalid configuration or description. The message names where, which field, and the bad value."""


class ProtocolError(ScalemsError):
    """A message could not be decoded, or comes from a peer speaking another protocol version."""


class ProtocolVersionError(ProtocolError):
    """The peer speaks another protocol version (another scalems_like release)."""


class UsageError(ConfigError):
    """The command line is wrong (the message names the option and the value): exit code 2."""


class CommandError(ScalemsError):
    """An external command failed."""

    def __init__(self, argv: Sequence[str], exit_code: int | None, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        status = "could not be started" if exit_code is None else f"exited with code {exit_code}"
        super().__init__(
            f"command {self.argv!r} {status}\n--- stdout ---\n{stdout.rstrip()}\n--- stderr ---\n{stderr.rstrip()}"
        )


class SshError(ScalemsError):
    """The ssh connection to a remote cluster (or a transfer over it) failed. One line: the resource, the ssh
    destination, what went wrong and ssh's own message; ``kind`` names the failure (the values of
    :class:`scalems_like.remote.diagnosis.Failure`: ``host-key-unknown``, ``authentication``,
    ``connection-lost``, ...)."""

    def __init__(self, resource: str, destination: str, kind: str, message: str) -> None:
        super().__init__(f"resource {resource!r} ({destination}): {message}")
        self.resource = resource
        self.destination = destination
        self.kind = kind


class SubmitError(ScalemsError):
    """A pilot job could not be submitted to its batch system."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class StagingError(ScalemsError):
    """A directive could not be carried out; the message names it."""


class SessionInUse(ScalemsError):
    """Another live client process holds the session."""


class PilotFailed(ScalemsError):
    """A pilot failed. ``pilot_uid`` and ``failure`` (human-readable text) say which and why."""

    def __init__(self, pilot_uid: str, failure: str) -> None:
        super().__init__(f"pilot {pilot_uid} failed: {failure}")
        self.pilot_uid = pilot_uid
        self.failure = failure


class PilotDegraded(ScalemsError):
    """Raised by ``Pilot.wait_ready``: nodes of the pilot went out of its schedule (one never joined, one whose
    workers kept dying), so that the cores asked for can no longer all serve. The pilot runs on with the others;
    ``pilot_uid`` and ``reason`` (cores ready, the nodes out and why) say which and why."""

    def __init__(self, pilot_uid: str, reason: str) -> None:
        super().__init__(f"pilot {pilot_uid}: {reason}")
        self.pilot_uid = pilot_uid
        self.reason = reason


class TaskFailed(ScalemsError):
    """A task did not succeed. ``reason`` says why."""

    def __init__(self, task_uid: str, state: str, reason: str) -> None:
        super().__init__(f"task {task_uid} {state}: {reason}")
        self.task_uid = task_uid
        self.state = state
        self.reason = reason

    def __reduce__(self) -> tuple[type[TaskFailed], tuple[str, str, str]]:
        """Pickled with its three fields (it travels back from a radical backend's raptor worker so)."""
        return type(self), (self.task_uid, self.state, self.reason)


class TaskWasCanceled(TaskFailed, concurrent.futures.CancelledError):
    """A task ended CANCELED (``result()`` raises it, as a cancelled Future's raises CancelledError)."""


class DependencyFailed(TaskFailed):
    """A task was never submitted: one of its input futures did not end DONE."""


class RemoteError(Exception):
    """Stands for an exception raised by a task whose exception object could not travel back."""

    remote_traceback: str | None = None


class ResultFileError(ScalemsError):
    """A DONE task's return value, kept as a file in its task sandbox, cannot be read back: the file is gone or
    not what the worker wrote. ``path`` names it."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class TaskInterrupt(BaseException):
    """Raised inside a worker to stop a running function task (never seen by the client)."""


class TaskTimeout(TaskInterrupt):
    """Raised inside a worker when a function task exceeds its timeout."""


class CancelInterrupt(TaskInterrupt):
    """Raised inside a worker when a running function task is canceled (users see the task CANCELED, and
    :class:`TaskWasCanceled` from its ``result()``)."""


class WaitTimeout(ScalemsError, TimeoutError):
    """A wait did not complete within its timeout."""


class NoPilot(ScalemsError):
    """A wait without a timeout on tasks that cannot run: the session has no pilot (and none is being submitted).
    Raised at once instead of waiting forever; the tasks stay queued and run on the session's first pilot."""
