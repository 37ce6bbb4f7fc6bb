"""Batch-system adapters: submit a rendered pilot job, report its state, cancel it (through psij-python)."""

from __future__ import annotations

from pathlib import Path

from scalems_like.adapters.base import BatchAdapter, JobEvent, JobState, PilotJob
from scalems_like.adapters.psij_adapter import PsijAdapter
from scalems_like.resources import ResourceConfig


def adapter_for(resource: ResourceConfig, work_directory: Path) -> BatchAdapter:
    """The adapter that submits pilot jobs for ``resource``."""
    return PsijAdapter(resource.scheduler, work_directory, resource.status_polling_interval)


__all__ = ["BatchAdapter", "JobEvent", "JobState", "PilotJob", "PsijAdapter", "adapter_for"]
