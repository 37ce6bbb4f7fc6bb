"""The work behind the psij executor: jobs in, tasks out, task state changes back as psij statuses."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable

from psij import InvalidJobException, Job, JobExecutor, JobSpec, JobState, JobStatus, SubmitException

from scalems_like.client.task import Task
from scalems_like.errors import ScalemsError, SessionInUse
from scalems_like.psij_executor import mapping, states
from scalems_like.psij_executor.follower import SessionFollower
from scalems_like.psij_executor.sessions import SessionHeld, SessionHolder
from scalems_like.psij_executor.target import Target
from scalems_like.states import TaskState


class PilotJobs:
    """psij jobs run as tasks of the executor's sessions; ``set_status`` is the executor's ``_set_job_status``
    (which runs the job's and the executor's callbacks)."""

    def __init__(self, target: Target, set_status: Callable[[Job, JobStatus], None]) -> None:
        """Jobs for ``target``; no I/O (the first submit or attach starts or reattaches a session)."""
        self.sessions = SessionHolder(target)
        self._set_status = set_status
        self._tasks: dict[str, Task] = {}
        self._attached: dict[str, Job] = {}
        """The jobs attached (by native id): followed from another executor's session or a journal."""
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
        """Follow the task ``native`` names (``SESSION_UID/TASK_UID``): in its session if this process is its
        client, else from its journal while another live process is (read-only), else in its session reattached.
        The job is bound to ``executor`` once the task is found."""
        if job.status.state != JobState.NEW:
            raise InvalidJobException("Job must be in the NEW state")
        session_uid, task_uid = mapping.parse_native_id(native)
        source = self.sessions.to_attach(session_uid, self._take_over)
        if isinstance(source, SessionFollower):
            try:
                task = source.follow(task_uid)
            except (ScalemsError, OSError, sqlite3.Error) as error:
                raise SubmitException(f"cannot follow session {session_uid} from its journal: {error}") from error
        else:
            task = next((task for task in source.tasks if task.uid == task_uid), None)
        if task is None:
            raise InvalidJobException(f"session {session_uid} has no task {task_uid}")
        job.executor = executor
        job._native_id = native
        with self._lock:  # (both at once: a take-over on the follower's thread finds the job)
            self._attached[native] = job
            self._follow(job, task)

    def _take_over(self, follower: SessionFollower) -> bool:
        """(the follower's thread) the client that held the session let it go: reattach it here and follow its
        jobs live. False if another client holds it again (the follower goes on reading its journal)."""
        try:
            session = self.sessions.by_uid(follower.uid)
        except SessionHeld:  # (another client reattached it first: the journal is written again)
            return False
        except SubmitException as error:
            if isinstance(error.__cause__, SessionInUse):  # (its client has not quite let go of the lock yet)
                return False
            if self.sessions.finished:  # (this executor was closed meanwhile: nothing more to follow)
                return True
            unfinished = [task for task in follower.tasks if not task.state.is_final]
            follower.end(unfinished, TaskState.FAILED, f"its session's client let it go, and it could not be "
                                                       f"followed further: {error}")
            return True
        live = {task.uid: task for task in session.tasks}
        for followed in follower.tasks:
            native = mapping.native_id(follower.uid, followed.uid)
            with self._lock:
                job = self._attached.get(native)
            if job is not None and followed.uid in live:
                self._follow(job, live[followed.uid])
        self.sessions.forget_follower(follower)
        return True

    def cancel(self, job: Job) -> None:
        """Ask for the job's end: it ends CANCELED, unless it finishes first."""
        with self._lock:
            task = self._tasks.get(job.native_id or "")
        if task is None:
            raise SubmitException(f"job {job.id} was not submitted to or attached by this executor")
        try:
            task.cancel()
        except ScalemsError as error:  # (a job followed read-only: its session's client alone can cancel it)
            raise SubmitException(f"cannot cancel job {job.native_id}: {error}") from error

    def list(self) -> list[str]:
        """Native ids of the unfinished jobs of this executor's sessions (the current one reattached if named)."""
        if self.sessions.current_uid is not None and not self.sessions.finished:
            self.sessions.current()
        with self._lock:
            held = list(self.sessions.sessions.values())
            attached = [native for native, task in self._tasks.items()
                        if native in self._attached and not task.state.is_final]
        listed = [mapping.native_id(session.uid, task.uid) for session in held for task in session.tasks
                  if not task.state.is_final]
        return listed + sorted(set(attached) - set(listed))

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
