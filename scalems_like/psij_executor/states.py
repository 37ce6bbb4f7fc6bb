"""Task states onto psij's job states, and the exit code and message of a finished job.

==========================  =========  ===========================================================
TaskState                   JobState   note
==========================  =========  ===========================================================
NEW, SUBMITTED, QUEUED      QUEUED     accepted: waiting on the client, at the agent, for cores
RUNNING                     ACTIVE     a worker started the launch script
DONE                        COMPLETED  exit code 0
FAILED                      FAILED     exit code and message (below)
CANCELED                    CANCELED
==========================  =========  ===========================================================

psij fills skipped states itself (a task that finished at once goes QUEUED → ACTIVE → COMPLETED). A FAILED
job's message is, as with psij's launchers, the launch script's own output when the launch itself failed (a
pre- or post-launch script that failed); else the line saying why the executable did not start; else the
task's reason (``exited with code 3``, ``timed out after 5 s (process group killed)``, a lost pilot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psij import JobState, JobStatus

from scalems_like.states import TaskState

if TYPE_CHECKING:
    from scalems_like.client.task import Task

JOB_STATES = {
    TaskState.NEW: JobState.QUEUED, TaskState.SUBMITTED: JobState.QUEUED, TaskState.QUEUED: JobState.QUEUED,
    TaskState.RUNNING: JobState.ACTIVE, TaskState.DONE: JobState.COMPLETED, TaskState.FAILED: JobState.FAILED,
    TaskState.CANCELED: JobState.CANCELED,
}
LAUNCHER_DONE = "_SCALEMS_LIKE_LAUNCHER_DONE"
"""The last line ``launch.sh`` prints when the launch went through (see launch.sh)."""
PLAIN_EXIT = "exited with code"
"""How a worker's reason for a non-zero exit begins (scalems_like.overlay.execution)."""


def failure_message(reason: str | None, launcher_output: str | None, launcher_errors: str | None) -> str | None:
    """The message of a FAILED job from its task's reason and the launch script's stdout and stderr."""
    output, errors = launcher_output or "", launcher_errors or ""
    launch_failed = bool(output or errors) and not output.endswith(LAUNCHER_DONE + "\n")
    if launch_failed and (reason or "").startswith(PLAIN_EXIT):
        return output + errors
    for line in errors.splitlines():
        if line.startswith("cannot start '"):
            return line
    return reason


def job_status(task: Task, native: str) -> JobStatus:
    """The psij status of ``task`` now (time: when the task changed state, where it did)."""
    state = JOB_STATES[task.state]
    when = task.history[-1][1] if task.history and task.history[-1][1] else None
    if state is JobState.QUEUED:
        return JobStatus(state, time=when, metadata={"nativeId": native})
    if not state.final:
        return JobStatus(state, time=when)
    message = None
    if state is JobState.FAILED:
        message = failure_message(task.reason, task.stdout, task.stderr)
    elif state is JobState.CANCELED:
        message = task.reason
    return JobStatus(state, time=when, exit_code=task.exit_code, message=message)
