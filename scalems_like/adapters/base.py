"""The batch-shaped adapter contract: render a pilot job, submit it, hear its state, cancel it.

An adapter turns a :class:`PilotJob` (what to run, where, with which resources) into a batch job and reports
the job's life through a callback with :class:`JobEvent` values. It knows nothing about agents or tasks: a
RUNNING job is not an ACTIVE pilot; the session decides that when the agent connects.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable, Mapping
from pathlib import Path


class JobState(str, enum.Enum):
    QUEUED = "QUEUED"
    """Accepted by the batch system, waiting for an allocation."""
    RUNNING = "RUNNING"
    """The job script runs (the bootstrap)."""
    COMPLETED = "COMPLETED"
    """The job script exited 0."""
    FAILED = "FAILED"
    """The job script exited non-zero, or the batch system ended it (walltime, node failure)."""
    CANCELED = "CANCELED"
    """Canceled through the adapter or by the batch system's user command."""

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELED)


@dataclasses.dataclass(frozen=True)
class JobEvent:
    state: JobState
    time: float
    exit_code: int | None = None
    message: str | None = None
    """The batch system's own words (e.g. why sbatch rejected the job), when it gives any."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PilotJob:
    """A rendered pilot job: run ``executable arguments`` in ``directory`` with these resources."""

    name: str
    executable: str
    arguments: tuple[str, ...]
    directory: Path
    stdout: Path
    stderr: Path
    environment: Mapping[str, str]
    nodes: int
    cores_per_node: int | None
    """None: whole nodes (exclusive use), the agent uses every core it finds."""
    gpus_per_node: int
    runtime: float
    queue: str | None = None
    account: str | None = None
    project: str | None = None
    custom_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    role: str = "the pilot job"
    """How errors name the job (a submitted session's own job: "the session's batch job")."""

    def request(self) -> str:
        """What the job asks of the batch system, as a user reads it in an error: ``nodes=50, cores per node=4,
        runtime=3600 s, queue=debug``."""
        parts = [f"nodes={self.nodes}",
                 f"cores per node={self.cores_per_node if self.cores_per_node is not None else 'all (whole nodes)'}"]
        if self.gpus_per_node:
            parts.append(f"GPUs per node={self.gpus_per_node}")
        parts += [f"runtime={self.runtime:g} s", f"queue={self.queue or '(the default)'}"]
        parts += [f"{name}={value}" for name, value in (("account", self.account), ("project", self.project)) if value]
        parts += [f"{key}={value}" for key, value in self.custom_attributes.items()]
        return ", ".join(parts)


class BatchAdapter(abc.ABC):
    """Submits pilot jobs to one batch system. Constructors do no I/O."""

    @abc.abstractmethod
    def submit(self, job: PilotJob, on_event: Callable[[JobEvent], object]) -> str:
        """Submit ``job``; returns its native id. ``on_event`` is called (from any thread) on each change.

        Raises :class:`~scalems_like.errors.SubmitError` with the batch system's message if it refuses.
        """

    @abc.abstractmethod
    def attach(self, native_id: str, on_event: Callable[[JobEvent], object]) -> bool:
        """Follow a job submitted by an earlier client (reattach); False if the batch system no longer knows it."""

    @property
    def reachable(self) -> bool:
        """False while the batch system and the pilots cannot be reached (a remote resource whose ssh connection
        was lost): their silence then says nothing, and they are not failed for it."""
        return True

    @abc.abstractmethod
    def cancel(self, native_id: str) -> None:
        """Cancel the job (no error if it already ended)."""
