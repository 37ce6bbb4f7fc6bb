"""Workers that heal: the policy, apart from the processes and sockets it is applied to. Pure, no I/O.

A worker that dies is replaced on its node (the master, or a node manager, does the launching). What this module
decides is everything else:

* **why** — :func:`death_reason` names how the process ended (``killed by signal 9 (SIGKILL; out of memory?)``,
  ``exited with code 3``);
* **who pays** — :func:`charge`: of the tasks the dead worker had, the first (the one it ran: a worker runs its
  tasks in the order given) ends its attempt with ``worker died while running it: WHY`` and is retried if it has
  retries left; the others were only queued there, and go back to the queue as they were (no attempt counted);
* **which node to take out** — :class:`NodeHealth`: a node where ``limit`` workers died within ``window`` seconds
  *while running no task* (idle, starting, silent) is out of the schedule, with a reason saying so. A worker that
  died under a task is that task's doing (its reason and its retries bear it), never the node's: user code cannot
  take a node, or the pilot, out.
"""

from __future__ import annotations

import collections
import dataclasses
import signal
from collections.abc import Iterable

DEATHS_LIMIT = 5
"""Default number of worker deaths (not under a task) that take a node out of the schedule..."""
DEATHS_WINDOW = 60.0
"""...within this many seconds."""

SIGNAL_HINTS = {signal.SIGKILL: "out of memory?", signal.SIGSEGV: "a crash in native code?",
                signal.SIGBUS: "a crash in native code?", signal.SIGABRT: "aborted"}


def death_reason(code: int) -> str:
    """How a worker process ended, ``code`` as :meth:`subprocess.Popen.wait` reports it (-N: signal N)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        number = signal.Signals(-code)
    except ValueError:
        return f"killed by signal {-code}"
    hint = SIGNAL_HINTS.get(number)
    return f"killed by signal {-code} ({number.name}{'; ' + hint if hint else ''})"


def running_reason(why: str) -> str:
    """The reason the task a worker ran ends with when the worker dies."""
    return f"worker died while running it: {why}"


def charge(queued: list[str]) -> tuple[str | None, list[str]]:
    """Split a dead worker's tasks (in the order it was given them): the one it ran, and those to queue again."""
    return (queued[0], queued[1:]) if queued else (None, [])


@dataclasses.dataclass
class NodeHealth:
    """Worker deaths per node, and the nodes taken out of the schedule (with why)."""

    limit: int = DEATHS_LIMIT
    window: float = DEATHS_WINDOW
    deaths: dict[str, collections.deque[float]] = dataclasses.field(default_factory=dict)
    out: dict[str, str] = dataclasses.field(default_factory=dict)
    """node → why it was taken out of the schedule."""

    def worker_died(self, node: str, why: str, now: float) -> str | None:
        """Count a death (one not under a task) on ``node``; returns the reason if the node is now out."""
        if node in self.out:
            return None
        recent = self.deaths.setdefault(node, collections.deque())
        recent.append(now)
        while recent and recent[0] < now - self.window:
            recent.popleft()
        if len(recent) < self.limit:
            return None
        self.out[node] = (f"{len(recent)} of its workers died within {self.window:g} s while running no task "
                          f"(the last: {why})")
        return self.out[node]

    def take_out(self, node: str, reason: str) -> None:
        """``node`` is out of the schedule for ``reason`` (its workers kept dying, it never joined)."""
        self.out[node] = reason

    def is_out(self, node: str) -> bool:
        return node in self.out

    def all_out(self, nodes: Iterable[str]) -> bool:
        return all(node in self.out for node in nodes)

    def summary(self) -> str:
        """Every node out, with why (for the pilot's failure)."""
        return "; ".join(f"node {node}: {why}" for node, why in self.out.items())
