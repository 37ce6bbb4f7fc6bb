"""The client's handle of one pilot: its state, bootstrap progress and failure, updated by the session."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ConfigError, PilotDegraded, PilotFailed
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


class NodeReadiness(NamedTuple):
    """How much of one node of a pilot serves, as its agent last reported it."""

    name: str
    ready_cores: int
    """Cores whose workers said hello and serve now."""
    cores: int
    """Cores the node's workers own when all of them serve."""
    out: str | None
    """Why the node is out of the pilot's schedule (it never joined, its workers kept dying); None while in it."""


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
        self.readiness: dict[str, NodeReadiness] = {}
        """Each node's readiness by name, as its agent reports it when workers join or leave (empty until the
        agent's first report)."""
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

    @property
    def ready_cores(self) -> int:
        """Cores whose workers serve now: 0 until the agent reports, falls when workers die (and comes back when
        they are replaced) or a node is lost, 0 once the pilot has ended."""
        if self.state.is_final:
            return 0
        return sum(node.ready_cores for node in list(self.readiness.values()))

    def describe_readiness(self) -> str:
        """``4 of 8 cores ready on 1 of 2 nodes`` (and the nodes out of the schedule)."""
        nodes = list(self.readiness.values())
        if not nodes:
            return "its agent has not reported its nodes yet"
        text = (f"{self.ready_cores} of {sum(node.cores for node in nodes)} cores ready on "
                f"{sum(1 for node in nodes if node.ready_cores and not self.state.is_final)} of {len(nodes)} nodes")
        out = [f"node {node.name} out of the schedule: {node.out}" for node in nodes if node.out]
        return "; ".join([text, *out])

    def wait_ready(self, cores: int | None = None, timeout: float | None = None) -> int:
        """Block until ``cores`` cores of the pilot serve (default: every core of the pilot); returns the cores
        ready.

        Raises :class:`PilotFailed` if the pilot ends first, :class:`PilotDegraded` once nodes out of the schedule
        (a node that never joined, one whose workers kept dying) leave fewer cores than asked for, and
        :class:`WaitTimeout` after ``timeout`` seconds, saying how many cores are up of how many.
        """
        if cores is not None and (not isinstance(cores, int) or isinstance(cores, bool) or cores < 1):
            raise ConfigError(f"Pilot.wait_ready: cores = {cores!r}: expected a number of cores >= 1")

        def reached() -> bool:
            return self.state.is_final or self._readiness_settled(cores)
        self._session._wait_for(reached, timeout, lambda: f"pilot {self.uid} is {self.state.value}, "
                                f"{self.describe_readiness()}")
        if self.state.is_final:
            raise PilotFailed(self.uid, self.failure or f"ended {self.state.value} before its cores were ready")
        nodes = list(self.readiness.values())
        total = sum(node.cores for node in nodes)
        if cores is not None and cores > total:
            raise ConfigError(f"Pilot.wait_ready: cores = {cores}: pilot {self.uid} has {total} cores")
        wanted = total if cores is None else cores
        if self.ready_cores < wanted:
            raise PilotDegraded(self.uid, f"{wanted} cores can no longer be ready: {self.describe_readiness()}")
        return self.ready_cores

    def _readiness_settled(self, cores: int | None) -> bool:
        """``cores`` (None: all) serve, or can no longer (too few cores left in the schedule, or the pilot has
        fewer)."""
        nodes = list(self.readiness.values())
        if not nodes:
            return False
        total = sum(node.cores for node in nodes)
        wanted = total if cores is None else cores
        return self.ready_cores >= wanted or sum(node.cores for node in nodes if not node.out) < wanted

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
