"""The client's handle of one pilot: its state, bootstrap progress and failure, updated by the session."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from scalems_like.descriptions import PilotDescription
from scalems_like.errors import PilotFailed
from scalems_like.resources import ResourceConfig
from scalems_like.states import PilotState

if TYPE_CHECKING:
    from scalems_like.client.session import Session


class BootstrapEvent(tuple[float, str, str, int]):
    """(time, step, state, exit_code) of one bootstrap step event, as the pilot job reported it."""

    __slots__ = ()

    @property
    def time(self) -> float:
        return self[0]

    @property
    def step(self) -> str:
        return self[1]

    @property
    def state(self) -> str:
        return self[2]

    @property
    def exit_code(self) -> int:
        return self[3]


class Pilot:
    def __init__(self, uid: str, description: PilotDescription, resource: ResourceConfig, sandbox: Path,
                 session: Session) -> None:
        self.uid = uid
        self.description = description
        self.resource = resource
        self.sandbox = sandbox
        self._session = session
        self.state = PilotState.NEW
        self.failure: str | None = None
        """Why the pilot FAILED (or why it ended), as readable text: step, exit code, output tail."""
        self.native_id: str | None = None
        """The batch system's job id."""
        self.history: list[tuple[PilotState, float, str]] = []
        self.bootstrap_events: list[BootstrapEvent] = []
        self.nodes: list[tuple[str, int, int]] = []
        """(name, cores, gpus) of each node, as the agent found them."""
        self.staging_failure: str | None = None
        """Why the pilot's output staging failed, if it did."""
        self.agent_host: str | None = None
        self.agent_pid: int | None = None
        self._callbacks: list[Callable[[Pilot, PilotState], None]] = []

    def __repr__(self) -> str:
        return f"<Pilot {self.uid} {self.resource.name} {self.state.value}>"

    @property
    def bootstrap_step(self) -> str | None:
        """The bootstrap step running now (or the last one reported)."""
        return self.bootstrap_events[-1].step if self.bootstrap_events else None

    def wait(self, state: PilotState | str | None = None, timeout: float | None = None) -> PilotState:
        """Block until the pilot reaches ``state`` (default: a final state).

        Waiting for ACTIVE raises :class:`PilotFailed` if the pilot ends first.
        """
        target = PilotState(state) if state is not None else None
        self._session._wait_pilot(self, target, timeout)
        if target is PilotState.ACTIVE and self.state is not PilotState.ACTIVE:
            raise PilotFailed(self.uid, self.failure or f"ended {self.state.value} before it was ACTIVE")
        return self.state

    def cancel(self) -> None:
        """Stop the pilot: its running tasks end CANCELED, its batch job is canceled."""
        self._session._cancel_pilot(self)

    def add_callback(self, callback: Callable[[Pilot, PilotState], None]) -> None:
        """Call ``callback(pilot, state)`` on every state change (from the session's I/O thread)."""
        self._callbacks.append(callback)


def describe_pilots(pilots: Iterable[Pilot], submitting: int) -> str:
    """How a session's pilots stand, for a wait that timed out: none, none live, or how many in which state."""
    pilots = list(pilots)
    if not pilots:
        if submitting:
            return "the session's first pilot is being submitted"
        return "the session has no pilot (submit one with session.submit_pilot)"
    counts = collections.Counter(pilot.state for pilot in pilots)
    states = ", ".join(f"{counts[state]} {state.value}" for state in PilotState if state in counts)
    if all(pilot.state.is_final for pilot in pilots) and not submitting:
        return f"no live pilot (pilots: {states})"
    return f"pilots: {states}"
