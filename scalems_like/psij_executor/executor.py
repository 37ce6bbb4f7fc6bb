"""``psij.JobExecutor.get_instance("scalems-like", url=...)``: psij jobs run as tasks inside a scalems_like pilot.

psij finds this class through ``psij-descriptors/scalems_like_descriptors.py`` and loads this module while
``import psij`` runs, by its file path. So this module imports only psij at the top; the rest of scalems_like
(ZeroMQ, the client) is imported when an executor is first used, not by every program that imports psij.
See :mod:`scalems_like.psij_executor` for the URL forms and the job model mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psij import Job, JobExecutor, JobExecutorConfig

if TYPE_CHECKING:
    from scalems_like.psij_executor.jobs import PilotJobs


class ScalemsLikeJobExecutor(JobExecutor):
    """A psij executor whose jobs run in a scalems_like session's pilot (one session per executor: started on
    the first submit from the URL's resource and pilot shape, or a live session named by the URL)."""

    def __init__(self, url: str | None = None, config: JobExecutorConfig | None = None) -> None:
        """Check the URL and config (ValueError naming what is wrong); no I/O: nothing starts before the first
        submit or attach."""
        from scalems_like.psij_executor.target import ScalemsLikeExecutorConfig, target_of

        super().__init__(url=url, config=config or ScalemsLikeExecutorConfig())
        self.target = target_of(url, config)
        self._jobs: PilotJobs | None = None

    @property
    def jobs(self) -> PilotJobs:
        if self._jobs is None:
            from scalems_like.psij_executor.jobs import PilotJobs

            self._jobs = PilotJobs(self.target, self._set_job_status)
        return self._jobs

    def submit(self, job: Job) -> None:
        """Submit ``job`` (a task of this executor's session; the session and its pilot start on the first
        submit). Raises InvalidJobException for a job that cannot map onto a task, SubmitException when the
        session cannot start or take the task. On return, ``job.native_id`` is ``SESSION_UID/TASK_UID``."""
        spec = self._check_job(job)
        self.jobs.submit(job, spec)

    def cancel(self, job: Job) -> None:
        """Ask for the job's end; it ends CANCELED (or COMPLETED/FAILED if it finished first)."""
        self.jobs.cancel(job)

    def list(self) -> list[str]:
        """Native ids of the unfinished jobs of this executor's sessions."""
        return self.jobs.list()

    def attach(self, job: Job, native_id: str) -> None:
        """Follow the job ``native_id`` (``SESSION_UID/TASK_UID``, from any process) to its end, as psij says:
        in its session if this process runs it (another executor's: shared, not taken over); read-only from the
        session's journal while a live client of another process holds it (that process alone can cancel the
        job; if it lets the session go first, this executor reattaches it); else its session is reattached."""
        self.jobs.attach(job, native_id, self)

    def close(self) -> None:
        """Close the sessions of this executor: pilots end, unfinished jobs end CANCELED (also at exit)."""
        if self._jobs is not None:
            self._jobs.sessions.close()

    def detach(self) -> None:
        """Leave the sessions running: another process may ``attach`` their jobs (within the agents'
        ``client_grace_period``); this executor takes no more jobs."""
        if self._jobs is not None:
            self._jobs.sessions.detach()

    @property
    def session_uid(self) -> str | None:
        """The uid of the session this executor submits to (None before the first submit)."""
        return self._jobs.sessions.current_uid if self._jobs is not None else self.target.session_uid
