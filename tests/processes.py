"""Looking at real processes from tests (/proc and ps)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # ProcessLookupError: the process was reaped between open() and read()
        return False


def processes(command: str) -> list[tuple[int, int]]:
    """(pid, parent pid) of the processes whose command line is exactly ``command``."""
    result = subprocess.run(["ps", "-wweo", "pid=,ppid=,args="], capture_output=True, text=True, check=True)
    found = []
    for line in result.stdout.splitlines():
        pid, ppid, args = line.split(None, 2)
        if args.strip() == command:
            found.append((int(pid), int(ppid)))
    return found


def children(pid: int) -> list[int]:
    result = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(line) for line in result.stdout.split()]


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    """Poll ``condition`` (for states only observable from outside the session, e.g. /proc)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.02)


def worker_processes(agent: int) -> list[int]:
    """The worker processes of a local pilot's agent: the agent starts a node manager, whose fork server forks the
    workers (agent → node manager → fork server → workers)."""
    return [worker for manager in children(agent) for spawner in children(manager) for worker in children(spawner)]
