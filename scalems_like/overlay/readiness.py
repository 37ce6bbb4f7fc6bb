"""How much of the pilot serves, and nodes that never join: a part of the master.

:class:`Readiness` reports to the client, per node, the cores whose workers said hello and serve now (a
:class:`~scalems_like.protocol.NodesReady` message with the nodes that changed, at most one per master loop pass,
journaled like every report so that ``scalems-like status`` reads it too); the client's ``Pilot.ready_cores`` and
``Pilot.wait_ready`` are built on it. A node none of whose workers said hello within the resource's
``node_join_timeout`` after the agent started them is taken out of the schedule with the state and the tail of the
output of its launcher (its process is killed if it runs that node's workers alone: a hung ``ssh``); the pilot runs
on with its other nodes.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from scalems_like.agent.config import AgentConfig
from scalems_like.agent.launch import Launched
from scalems_like.overlay.client_link import ClientLink
from scalems_like.overlay.healing import NodeHealth
from scalems_like.overlay.scheduler import Scheduler
from scalems_like.overlay.worker_processes import WorkerProcesses

log = logging.getLogger("scalems_like.master")


class Readiness:
    """The master's readiness reports and join deadline (a part of the master: the attributes below are its)."""

    config: AgentConfig
    per_node: int
    width: int
    scheduler: Scheduler
    health: NodeHealth
    link: ClientLink
    processes: WorkerProcesses
    lost_workers: set[str]
    joined: set[str]
    """Nodes where some worker said hello."""
    join_deadline: float | None
    """When nodes that have not joined are taken out (None: checked, or the workers are not started yet)."""
    node_launchers: dict[str, Launched]
    """The process that last started workers on each node (whose output a node that never joined is reported
    with)."""

    if TYPE_CHECKING:  # the master's own (or WorkerCare's)
        def take_node_out(self, node: str, reason: str, launched: Launched | None = None) -> None: ...

    def node_readiness(self, name: str) -> list[Any]:
        """``[node, ready_cores, cores, out]`` as :class:`~scalems_like.protocol.NodesReady` carries it."""
        node = self.scheduler.nodes[name]
        serving = 0 if node.closed else min(len(node.workers), self.per_node)
        return [name, serving * self.width, self.per_node * self.width, self.health.out.get(name, "")]

    def report_all_readiness(self) -> None:
        """Every node's readiness (the first report; a client that connects later gets it in the greeting)."""
        self.scheduler.changed_nodes.clear()
        self.link.send_readiness(time.time(), [self.node_readiness(name) for name in self.scheduler.nodes])

    def handle_readiness(self) -> None:
        """Report the nodes whose readiness changed since the last report (one message for all of them)."""
        if not self.scheduler.changed_nodes:
            return
        changed = [self.node_readiness(name) for name in self.scheduler.nodes if name in self.scheduler.changed_nodes]
        self.scheduler.changed_nodes.clear()
        changed = [entry for entry in changed if self.link.readiness.get(entry[0]) != entry]
        if changed:
            self.link.send_readiness(time.time(), changed)

    def check_node_joins(self, now: float) -> None:
        """Once ``node_join_timeout`` has passed since the workers started: take the nodes that never joined out."""
        if self.join_deadline is None or now < self.join_deadline:
            return
        self.join_deadline = None
        for node in self.scheduler.nodes:
            if node not in self.joined and not self.health.is_out(node):
                self.node_never_joined(node)

    def node_never_joined(self, node: str) -> None:
        """Take ``node`` out, saying how its launcher stands and how its output ends; stop what it started there
        (its workers, should they say hello after all, are refused as those of a node out)."""
        log.error("node %s: none of its workers said hello within %g s", node, self.config.node_join_timeout)
        self.take_node_out(node, f"none of its workers said hello within {self.config.node_join_timeout:g} s "
                                 "(node_join_timeout)")
        self.processes.stop_node(node)
