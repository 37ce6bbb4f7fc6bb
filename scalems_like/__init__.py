"""scalems_like: a pilot-job workflow engine for HPC clusters.

    import scalems_like as sl
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=600))
        tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/echo", arguments=["hi"])])
        session.wait_tasks(tasks)

The public names are imported on first use (``sl.Session`` imports the client, ZeroMQ and the rest then), so that
``import scalems_like`` — and the ``scalems-like`` command's ``--help`` and ``--version`` — cost next to nothing.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from scalems_like._version import __version__

logging.getLogger("scalems_like").addHandler(logging.NullHandler())  # the application decides what is shown

_ERRORS = ("CommandError", "ConfigError", "DependencyFailed", "NoPilot", "PilotDegraded", "PilotFailed",
           "ProtocolError", "RemoteError", "ResultFileError", "ScalemsError", "SessionInUse", "SshError",
           "StagingError", "SubmitError", "TaskFailed", "TaskTimeout", "TaskWasCanceled", "WaitTimeout")
_WHERE: dict[str, str] = {
    **dict.fromkeys(("AppFuture", "OutputFile", "executable_app", "function_app"),
                    "scalems_like.client.apps"),
    "Pilot": "scalems_like.client.pilot",
    "Session": "scalems_like.client.session",
    "current_session": "scalems_like.client.session",
    "Task": "scalems_like.client.task",
    "PilotDescription": "scalems_like.descriptions",
    "TaskDescription": "scalems_like.descriptions",
    **dict.fromkeys(_ERRORS, "scalems_like.errors"),
    "load_parameters": "scalems_like.launcher.parameters",
    "PilotState": "scalems_like.states",
    "TaskState": "scalems_like.states",
}
"""Each public name and the module that defines it."""


def __getattr__(name: str) -> Any:
    """``sl.NAME``: import NAME's module now (once: the value is then kept in this module's namespace)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'scalems_like' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if TYPE_CHECKING:  # what type checkers and IDEs see: the names as plain imports
    from scalems_like.client.apps import AppFuture, OutputFile, executable_app, function_app
    from scalems_like.client.pilot import Pilot
    from scalems_like.client.session import Session, current_session
    from scalems_like.client.task import Task
    from scalems_like.descriptions import PilotDescription, TaskDescription
    from scalems_like.errors import (
        CommandError,
        ConfigError,
        DependencyFailed,
        NoPilot,
        PilotDegraded,
        PilotFailed,
        ProtocolError,
        RemoteError,
        ResultFileError,
        ScalemsError,
        SessionInUse,
        SshError,
        StagingError,
        SubmitError,
        TaskFailed,
        TaskTimeout,
        TaskWasCanceled,
        WaitTimeout,
    )
    from scalems_like.launcher.parameters import load_parameters
    from scalems_like.states import PilotState, TaskState

__all__ = [
    "AppFuture",
    "CommandError",
    "ConfigError",
    "DependencyFailed",
    "NoPilot",
    "OutputFile",
    "Pilot",
    "PilotDegraded",
    "PilotDescription",
    "PilotFailed",
    "PilotState",
    "ProtocolError",
    "RemoteError",
    "ResultFileError",
    "ScalemsError",
    "Session",
    "SessionInUse",
    "SshError",
    "StagingError",
    "SubmitError",
    "Task",
    "TaskDescription",
    "TaskFailed",
    "TaskState",
    "TaskTimeout",
    "TaskWasCanceled",
    "WaitTimeout",
    "__version__",
    "current_session",
    "executable_app",
    "function_app",
    "load_parameters",
]
