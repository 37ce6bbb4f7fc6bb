"""The agent's configuration: written by the client into the pilot sandbox as ``agent.json``, read by the agent.

This file is the contract between the two sides, as the protocol module is for messages.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from scalems_like.paths import write_private_file

AGENT_CONFIG_FILE = "agent.json"

NODE_BEATS_PER_SECOND = 1024
"""Heartbeats a second the master exchanges with its node managers at most, each way (see
:func:`node_heartbeat_interval`)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentConfig:
    pilot_uid: str
    session_uid: str
    client_address: str
    pilot_sandbox: str
    runtime: float
    """Seconds the pilot may run; the agent stops its tasks shortly before the batch system would kill it."""
    nodes: int = 1
    cores: int | None = None
    """Cores per node to use (None: what the node has)."""
    gpus: int = 0
    """GPUs per node."""
    launch_method: str = "fork"
    mpi_launcher: str = "none"
    agent_address: str = "127.0.0.1"
    workers_per_node: int | None = None
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 10.0
    client_grace: float = 600.0
    """Seconds the agent goes on without any client (its tasks run on; results wait for a reattach)."""
    ssh_command: str = "ssh -o BatchMode=yes"
    results_in_sandbox_above: int | None = 1024 * 1024
    """A function's return value whose pickle has more bytes stays in a file of its task sandbox (None: never)."""
    worker_deaths_limit: int = 5
    worker_deaths_window: float = 60.0
    """A node where ``worker_deaths_limit`` workers died within this many seconds while running no task is taken
    out of the schedule (see :mod:`scalems_like.overlay.healing`)."""
    node_join_timeout: float = 60.0
    """A node none of whose workers said hello this many seconds after the agent started them is taken out of the
    schedule, reported with the tail of its launcher's output."""
    insecure: bool = False
    """No CurveZMQ (debugging only); else the keys are in ``PILOT_SANDBOX/keys/agent.json``."""

    def write(self, directory: Path) -> Path:
        """Write atomically (temp file + rename), readable by the owner only."""
        target = directory / AGENT_CONFIG_FILE
        write_private_file(target, json.dumps(dataclasses.asdict(self), indent=2))
        return target

    @classmethod
    def read(cls, directory: Path) -> AgentConfig:
        return cls(**json.loads((directory / AGENT_CONFIG_FILE).read_text()))


def node_heartbeat_interval(config: AgentConfig, nodes: int) -> float:
    """Seconds between two heartbeats of the master and a node manager (and of a manager and its workers): the
    configured ``heartbeat_interval``, longer for pilots of more than :data:`NODE_BEATS_PER_SECOND` nodes so that the
    master exchanges at most that many a second each way (at 2 048 nodes every 2 s), and at most a third of
    ``heartbeat_timeout`` (a manager or a worker is still declared lost after the same silence)."""
    return max(config.heartbeat_interval, min(nodes / NODE_BEATS_PER_SECOND, config.heartbeat_timeout / 3))
