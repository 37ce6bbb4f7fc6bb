"""Task and pilot states, and the transitions allowed between them.

Task:   NEW → SUBMITTED → QUEUED → RUNNING → DONE | FAILED | CANCELED
        (RUNNING → QUEUED when a failed attempt is retried; any non-final state → FAILED | CANCELED)
Pilot:  NEW → SUBMITTED → BOOTSTRAPPING → ACTIVE → DONE | FAILED | CANCELED
        (any non-final state → FAILED | CANCELED; SUBMITTED → ACTIVE when the job start went unseen)

Every FAILED carries a reason; every state change carries the time and the host where it happened.
"""

from __future__ import annotations

import enum


class TaskState(str, enum.Enum):
    NEW = "NEW"
    """Described on the client; not yet sent to any pilot."""
    SUBMITTED = "SUBMITTED"
    """Sent to a pilot's agent."""
    QUEUED = "QUEUED"
    """Accepted by the agent's master; waiting for free cores/GPUs and a worker."""
    RUNNING = "RUNNING"
    """Started by a worker."""
    DONE = "DONE"
    """Finished successfully: exit code 0, or the function returned."""
    FAILED = "FAILED"
    """Finished unsuccessfully; ``reason`` says why (exit code, exception, timeout, lost pilot...)."""
    CANCELED = "CANCELED"
    """Canceled by the user or by the session closing."""

    @property
    def is_final(self) -> bool:
        return self in TASK_FINAL

    def __str__(self) -> str:
        return self.value


class PilotState(str, enum.Enum):
    NEW = "NEW"
    """Described on the client; no batch job yet."""
    SUBMITTED = "SUBMITTED"
    """The batch job was accepted by the batch system (it may be queued)."""
    BOOTSTRAPPING = "BOOTSTRAPPING"
    """The batch job runs the bootstrap: sandbox, hooks, environment, agent start."""
    ACTIVE = "ACTIVE"
    """The agent connected to the client and accepts tasks. A RUNNING batch job is not yet ACTIVE."""
    DONE = "DONE"
    """The pilot ended normally: session closed, or its runtime ran out."""
    FAILED = "FAILED"
    """The pilot ended abnormally; ``failure`` says why (bootstrap step and output, batch message, lost agent)."""
    CANCELED = "CANCELED"
    """Canceled by the user."""

    @property
    def is_final(self) -> bool:
        return self in PILOT_FINAL

    def __str__(self) -> str:
        return self.value


TASK_FINAL = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELED})
PILOT_FINAL = frozenset({PilotState.DONE, PilotState.FAILED, PilotState.CANCELED})

_TASK_ORDER = {state: index for index, state in enumerate(TaskState)}
_PILOT_ORDER = {state: index for index, state in enumerate(PilotState)}


def task_transition_allowed(old: TaskState, new: TaskState) -> bool:
    """True when a task may move from ``old`` to ``new`` (final states never change)."""
    if old in TASK_FINAL:
        return False
    if new in TASK_FINAL:
        return True
    if old is TaskState.RUNNING and new is TaskState.QUEUED:  # a retry
        return True
    return _TASK_ORDER[new] > _TASK_ORDER[old]


def pilot_reached(current: PilotState, target: PilotState) -> bool:
    """True when a pilot in ``current`` is at or past ``target`` in the life cycle (final states end it)."""
    return current in PILOT_FINAL or _PILOT_ORDER[current] >= _PILOT_ORDER[target]


def pilot_transition_allowed(old: PilotState, new: PilotState) -> bool:
    """True when a pilot may move from ``old`` to ``new`` (final states never change)."""
    if old in PILOT_FINAL:
        return False
    return new in PILOT_FINAL or _PILOT_ORDER[new] > _PILOT_ORDER[old]


class SessionState(str, enum.Enum):
    """A session as ``scalems-like ls`` and ``status`` name it: one set of words for submitted sessions (from the
    launch record and the batch system) and interactive ones (from the journal and its client)."""

    QUEUED = "QUEUED"
    """(submitted) The batch job waits for an allocation."""
    BOOTSTRAPPING = "BOOTSTRAPPING"
    """(submitted) The job runs its bootstrap."""
    RUNNING = "RUNNING"
    """Its client runs (in the allocation, or where the user started it)."""
    DETACHED = "DETACHED"
    """(interactive) Its client detached; its pilots may run on (``scalems-like reattach``)."""
    INTERRUPTED = "INTERRUPTED"
    """(interactive) Its client died without closing it (``reattach``, ``resume`` or ``cancel`` it)."""
    CANCELING = "CANCELING"
    """(submitted) Canceled; the batch system still has the job."""
    DONE = "DONE"
    """Ended, every task DONE."""
    FAILED = "FAILED"
    """Ended with a task not DONE (or, submitted, a job that ended without the session recording its end)."""
    CANCELED = "CANCELED"
    """Ended by a cancel."""

    @property
    def is_final(self) -> bool:
        return self in (SessionState.DONE, SessionState.FAILED, SessionState.CANCELED)

    def __str__(self) -> str:
        return self.value
