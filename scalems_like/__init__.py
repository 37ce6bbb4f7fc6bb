"""scalems_like: a pilot-job workflow engine for HPC clusters.

    import scalems_like as sl
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=600))
        tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/echo", arguments=["hi"])])
        session.wait_tasks(tasks)
"""

import logging

from scalems_like.client.apps import AppFuture, DependencyFailed, OutputFile, executable_app, function_app
from scalems_like.client.pilot import Pilot
from scalems_like.client.session import Session, current_session
from scalems_like.client.task import RemoteError, Task
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import (
    CommandError,
    ConfigError,
    PilotFailed,
    ProtocolError,
    ResultFileError,
    ScalemsError,
    SubmitError,
    TaskCanceled,
    TaskFailed,
    TaskTimeout,
    TaskWasCanceled,
    WaitTimeout,
)
from scalems_like.launcher.parameters import load_parameters
from scalems_like.states import PilotState, TaskState

__version__ = "0.1.0"

logging.getLogger("scalems_like").addHandler(logging.NullHandler())  # the application decides what is shown

__all__ = [
    "AppFuture",
    "CommandError",
    "ConfigError",
    "DependencyFailed",
    "OutputFile",
    "Pilot",
    "PilotDescription",
    "PilotFailed",
    "PilotState",
    "ProtocolError",
    "RemoteError",
    "ResultFileError",
    "ScalemsError",
    "Session",
    "SubmitError",
    "Task",
    "TaskCanceled",
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
