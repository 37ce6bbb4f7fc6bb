"""The work behind the psij executor: jobs in, tasks out, task state changes back as psij statuses."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from psij import InvalidJobException, Job, JobExecutor, JobSpec, JobState, JobStatus, SubmitException

from scalems_like.client.task import Task
from scalems_like.errors import ScalemsError
from scalems_like.psij_executor import mapping, states
from scalems_like.psij_executor.sessions import SessionHolder
from scalems_like.psij_executor.target import Target


class PilotJobs:
    """psij jobs run as tasks of the executor's sessions; ``set_status`` is the executor's ``_set_job_status``
    (which runs the job's and the executor's callbacks)."""

    def __init__(self, target: Target, set_status: Callable[[Job, JobStatus], None]) -> None:
        """Jobs for ``target``; no I/O (the first submit or attach starts or reattaches a session)."""
        self.sessions = SessionHolder(target)
        self._set_status = set_status
        self._tasks: dict[str, Task] = {}
        self._lock = threading.RLock()
        """Serializes status changes: psij's status setter is not atomic between two threads."""

    def submit(self, job: Job, spec: JobSpec) -> None:
        """Submit ``job`` as a task of the current session; its native id is set on return."""
        mapping.check(spec)  # refuse a bad job before any session starts
        try:
            session = self.sessions.current()
            description = mapping.task_description(spec, self.sessions.launch_script(session), os.getcwd())
            if not os.path.isdir(description.working_directory or "."):  # psij's local executor: at submit
                raise SubmitException(f"the job's directory {description.working_directory} does not exist")
            with job._status_cv:
                if job.status.state == JobState.CANCELED:
                    raise SubmitException("Job canceled")
            [task] = session.submit_tasks([description])
        except (ScalemsError, OSError) as error:
            raise SubmitException(f"cannot submit job {job.id}: {error}") from error
        job._native_id = mapping.native_id(session.uid, task.uid)
        self._follow(job, task)

    def attach(self, job: Job, native: str, executor: JobExecutor) -> None:
        """Follow the task ``native`` names (``SESSION_UID/TASK_UID``), reattaching its session if needed; the job
        is bound to ``executor`` once the task is found."""
        if job.status.state != JobState.NEW:
            raise InvalidJobException("Job must be in the NEW state")
        session_uid, task_uid = mapping.parse_native_id(native)
        session = self.sessions.by_uid(session_uid)
        task = next((task for task in session.tasks if task.uid == task_uid), None)
        if task is None:
            raise InvalidJobException(f"session {session_uid} has no task {task_uid}")
        job.executor = executor
        job._native_id = native
        self._follow(job, task)

    def cancel(self, job: Job) -> None:
        """Ask for the job's end: it ends CANCELED, unless it finishes first."""
        with self._lock:
            task = self._tasks.get(job.native_id or "")
        if task is None:
            raise SubmitException(f"job {job.id} was not submitted to or attached by this executor")
        task.cancel()

    def list(self) -> list[str]:
        """Native ids of the unfinished jobs of this executor's sessions (the current one reattached if named)."""
        if self.sessions.current_uid is not None and not self.sessions.finished:
            self.sessions.current()
        with self._lock:
            held = list(self.sessions.sessions.values())
        return [mapping.native_id(session.uid, task.uid) for session in held for task in session.tasks
                if not task.state.is_final]

    def _follow(self, job: Job, task: Task) -> None:
        native = str(job.native_id)
        with self._lock:
            self._tasks[native] = task
            self._set_status(job, JobStatus(JobState.QUEUED, metadata={"nativeId": native}))
        task.add_callback(lambda changed, _state: self._update(job, changed, native))
        self._update(job, task, native)  # what happened before the callback was in place

    def _update(self, job: Job, task: Task, native: str) -> None:
        with self._lock:
            self._set_status(job, states.job_status(task, native))
