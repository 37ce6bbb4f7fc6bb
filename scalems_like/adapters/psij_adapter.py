"""Submission through psij-python executors (``local``, ``slurm``, ``pbs``, ``pbs_classic``).

Maps a :class:`PilotJob` onto psij's JobSpec / ResourceSpecV1 / JobAttributes and psij's job states onto
:class:`JobState`. Status polling uses the resource's ``status_polling_interval`` (psij's default of 30 s is
far too slow to tell a user anything in time).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalems_like.adapters.base import BatchAdapter, JobEvent, JobState, PilotJob
from scalems_like.errors import SubmitError

log = logging.getLogger("scalems_like.adapters")

_STATE_MAP = {
    "QUEUED": JobState.QUEUED,
    "ACTIVE": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELED,
}


class PsijAdapter(BatchAdapter):
    def __init__(self, executor_name: str, work_directory: Path, polling_interval: float) -> None:
        self.executor_name = executor_name
        self.work_directory = work_directory
        self.polling_interval = polling_interval
        self._executor: Any = None
        self._jobs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get_executor(self) -> Any:
        import psij  # imported late: psij installs a SIGCHLD handler and starts threads

        if self._executor is None:
            self.work_directory.mkdir(parents=True, exist_ok=True)
            if self.executor_name == "local":
                config = psij.JobExecutorConfig(work_directory=self.work_directory)
            else:
                from psij.executors.batch.batch_scheduler_executor import BatchSchedulerExecutorConfig

                interval = max(1, math.ceil(self.polling_interval))
                config = BatchSchedulerExecutorConfig(
                    work_directory=self.work_directory, queue_polling_interval=interval,
                    initial_queue_polling_delay=interval, keep_files=True,
                )
            self._executor = psij.JobExecutor.get_instance(self.executor_name, config=config)
        return self._executor

    def render(self, job: PilotJob) -> Any:
        """The psij Job for ``job`` (no I/O)."""
        import psij

        executable, arguments = job.executable, list(job.arguments)
        if self.executor_name == "local" and not inside_batch_job():
            executable, arguments = in_own_session(executable, arguments)
        spec = psij.JobSpec(
            executable=executable, arguments=arguments, directory=job.directory,
            environment=dict(job.environment), stdout_path=job.stdout, stderr_path=job.stderr,
            name=job.name, inherit_environment=True,
        )
        # one "process" per core: psij's PBS templates request ncpus = processes per node, and SLURM then
        # allocates the job as many tasks as the agent starts workers
        spec.resources = psij.ResourceSpecV1(
            node_count=job.nodes, processes_per_node=job.cores_per_node or 1,
            exclusive_node_use=job.cores_per_node is None and self.executor_name != "local",
        )
        custom: dict[str, object] = dict(job.custom_attributes)
        if job.gpus_per_node and self.executor_name == "slurm":
            custom.setdefault("slurm.gpus-per-node", str(job.gpus_per_node))
        # PBS: psij's select line has no GPUs; sites add them with a custom attribute if they need to
        spec.attributes = psij.JobAttributes(
            duration=datetime.timedelta(seconds=math.ceil(job.runtime)), queue_name=job.queue,
            account=job.account, project_name=job.project, custom_attributes=custom or None,
        )
        return psij.Job(spec)

    def render_script(self, job: PilotJob) -> str:
        """The batch script psij would submit for ``job`` (for batch executors; shown to users and tested)."""
        executor = self._get_executor()
        psij_job = self.render(job)
        text = io.StringIO()
        context = executor._create_script_context(psij_job)  # psij has no public call for this
        executor.generate_submit_script(psij_job, context, text)
        return text.getvalue().replace(psij_job.id, "{psij_job_id}")

    def submit(self, job: PilotJob, on_event: Callable[[JobEvent], object]) -> str:
        import psij

        psij_job = self.render(job)
        psij_job.set_job_status_callback(self._forwarder(on_event))
        try:
            self._get_executor().submit(psij_job)
        except (psij.SubmitException, psij.InvalidJobException) as error:
            transient = bool(getattr(error, "transient", False))
            said = str(error).strip() or type(error).__name__  # (sbatch's text ends with a blank line)
            raise SubmitError(f"{self.executor_name} refused {job.role} ({job.request()}): {said}",
                              transient=transient) from None
        native_id = str(psij_job.native_id)
        with self._lock:
            self._jobs[native_id] = psij_job
        return native_id

    def attach(self, native_id: str, on_event: Callable[[JobEvent], object]) -> bool:
        import psij

        psij_job = psij.Job()
        psij_job.set_job_status_callback(self._forwarder(on_event))
        try:
            self._get_executor().attach(psij_job, native_id)
        except Exception as error:  # psij: unknown job id; local: no such process (psutil)
            log.info("cannot follow %s job %s: %s", self.executor_name, native_id, error)
            return False
        with self._lock:
            self._jobs[native_id] = psij_job
        return True

    @staticmethod
    def _forwarder(on_event: Callable[[JobEvent], object]) -> Callable[[Any, Any], None]:
        def forward(_job: Any, status: Any) -> None:
            state = _STATE_MAP.get(status.state.name)
            if state is not None:
                on_event(JobEvent(state, status.time or time.time(), status.exit_code, status.message))
        return forward

    def cancel(self, native_id: str) -> None:
        """Cancel the job (a local job: its process tree gets SIGTERM, SIGKILL after 30 s; this can block as long)."""
        with self._lock:
            psij_job = self._jobs.get(native_id)
        if psij_job is None or psij_job.status.final:
            return
        if self.executor_name == "local":  # psij's own cancel can end its reaper thread: see terminate_local
            terminate_local(int(native_id))
            return
        try:
            psij_job.cancel()
        except Exception as error:  # e.g. scancel on a job that ended meanwhile: nothing left to cancel
            log.warning("cancel of %s job %s: %s", self.executor_name, native_id, error)


_IN_ALLOCATION = threading.Event()


def mark_in_allocation() -> None:
    """This process is a submitted session's client, inside its batch job (``scalems-like run --in-allocation``):
    its local jobs stay in the job's process group, where a batch system that tracks jobs by process group (SLURM
    ``proctrack/pgid``) finds them when it ends the job (no terminal sends Ctrl-C there). A user's own client in
    an interactive allocation (``salloc``, ``srun --pty``) is not one: its local pilots get a session of their
    own, away from Ctrl-C. (A flag of this process: the agents and tasks it starts do not inherit it.)"""
    _IN_ALLOCATION.set()


def inside_batch_job() -> bool:
    return _IN_ALLOCATION.is_set()


def in_own_session(executable: str, arguments: list[str]) -> tuple[str, list[str]]:
    """A local job's command run in a session (and process group) of its own, by util-linux ``setsid --wait``.

    psij's local executor starts jobs in the client's process group: a terminal's Ctrl-C (SIGINT to its foreground
    process group) would reach the job's agent and workers beside the client, and kill them before the client could
    cancel anything. ``--wait``: ``setsid`` forks when its caller leads a process group; without it the job would
    seem to end at once. It never forks here (psij's launcher shell runs it as a plain child), so the job's process
    tree, which :func:`terminate_local` walks, is unchanged. Without ``setsid`` the job stays in the client's group.
    """
    setsid = shutil.which("setsid")
    return (setsid, ["--wait", executable, *arguments]) if setsid else (executable, arguments)


def terminate_local(pid: int, patience: float = 30.0) -> None:
    """End a local job (started by this process or attached): SIGTERM to its process tree, SIGKILL to what is
    left after ``patience`` seconds.

    psij-python 0.9.11's local executor cancels from its (only) reaper thread, by SIGKILL to the job's process
    tree, again on every pass until the job is reaped: an attached process stays a zombie (so the kill is
    repeated and fails with NoSuchProcess), and a child that ends between the listing of the tree and its kill
    does the same. The failed pass is logged with a format error and leaves the reaper's list of finished jobs
    stale; the next pass then dies on a KeyError — after which no local job in the process is ever reported
    again. This is used for every local job instead. The job's own process is psij's launcher shell, which does
    not pass signals on: every process below it gets SIGTERM, so a session's client ends the session properly
    (its pilots shut down, its journal closed) while its agent and workers stop.
    """
    import psutil  # psij's own dependency

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    # The tree grows while the job starts (setsid forks the bootstrap, the bootstrap starts the agent, the agent
    # its workers): it is walked again until the job has ended. Neither psij's launcher shell nor the setsid
    # between it and the job get SIGTERM (neither passes it on: a killed setsid would orphan the job, out of
    # this tree); both end by themselves when the job has, so an agent's last word comes before the job's end.
    signaled: dict[int, Any] = {}
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        root_runs = _running(root)
        with contextlib.suppress(psutil.NoSuchProcess):
            for process in root.children(recursive=True) if root_runs else []:
                if process.pid not in signaled and not _is_setsid(process):
                    signaled[process.pid] = process
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.terminate()
        left = [process for process in signaled.values() if _running(process)]
        if not root_runs and not left:
            return
        if left:  # (never wait on the root: psij's own child, which psij reaps; the others are not ours)
            psutil.wait_procs(left, timeout=0.1)
        else:  # (the root's end is not a pidfd this thread can wait on without reaping it: look again soon)
            time.sleep(0.1)
    survivors = [*signaled.values()]
    with contextlib.suppress(psutil.NoSuchProcess):
        survivors += [*root.children(recursive=True), root]
    for process in survivors:  # ignored SIGTERM for ``patience`` s (or kept starting processes)
        with contextlib.suppress(psutil.NoSuchProcess):
            if _running(process):
                process.kill()


def _running(process: Any) -> bool:
    import psutil

    try:  # (is_running: False also when the pid now belongs to another process)
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_setsid(process: Any) -> bool:
    try:
        return bool(process.name() == "setsid")
    except Exception:  # (psutil: gone, or not ours)
        return False
