"""The processes that run an agent's workers, as the master's loop watches them.

One process per worker when forked, one per node when started by srun or mpiexec (its workers are named
``PREFIX.RANK``). Each is watched through a pidfd registered in the master's poll, so a process that ends wakes
the loop at once. When a batch system ends the job (scancel, walltime) every process gets SIGTERM, the workers'
often a moment before the agent's: :func:`termination_signaled` lets the master wait for its own, whose reason (the
job's end) is the better explanation.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import zmq

TERMINATION_PATIENCE = 1.0
"""Seconds to wait for the agent's own SIGTERM after a worker or a task ended by one (a job's end signals every
process of it; the agent's reason — the pilot ends, its tasks are interrupted — is the better one)."""


class WorkerProcesses:
    """Launched worker processes, by pidfd, with the worker uid (prefix) each runs."""

    def __init__(self, poller: zmq.Poller) -> None:
        self.poller = poller
        self.by_pidfd: dict[int, tuple[subprocess.Popen[bytes], str]] = {}

    def watch(self, processes: list[tuple[subprocess.Popen[bytes], str]]) -> None:
        """Watch launched processes; each is given with the uid (prefix) of the workers it runs."""
        for process, prefix in processes:
            pidfd = os.pidfd_open(process.pid)
            self.by_pidfd[pidfd] = (process, prefix)
            self.poller.register(pidfd, zmq.POLLIN)

    def ended(self, events: dict[Any, int]) -> list[tuple[subprocess.Popen[bytes], str, int]]:
        """(process, prefix, exit code) of the watched processes whose pidfd the poll reported; reaped, unwatched."""
        found = []
        for pidfd in [fd for fd in events if isinstance(fd, int) and fd in self.by_pidfd]:
            process, prefix = self.by_pidfd.pop(pidfd)
            self.poller.unregister(pidfd)
            os.close(pidfd)
            found.append((process, prefix, process.wait()))
        return found

    def __bool__(self) -> bool:
        """Some watched process has not been seen to end."""
        return bool(self.by_pidfd)

    def alive(self) -> bool:
        return any(process.poll() is None for process, _ in self.by_pidfd.values())

    def terminate(self) -> None:
        for process, _ in self.by_pidfd.values():
            if process.poll() is None:
                process.terminate()


def ended_by_sigterm(code: int) -> bool:
    return code in (-signal.SIGTERM, 128 + signal.SIGTERM)


def termination_signaled(patience: float = TERMINATION_PATIENCE) -> bool:
    """Wait up to ``patience`` s for a SIGTERM to this process; if one comes, raise it again for the agent's
    handler (which says why) and return True."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        if signal.sigtimedwait([signal.SIGTERM], patience) is None:
            return False
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    signal.raise_signal(signal.SIGTERM)
    return True


def worker_log_tail(sandbox: Path, lines: int = 10) -> str:
    """Where the first worker log is and how it ends (for "every worker process ended")."""
    logs = sorted((sandbox / "workers").glob("*.log"))
    if not logs:
        return "the worker log ends with:\n"
    tail = logs[0].read_text(errors="replace").strip().splitlines()[-lines:]
    return f"{logs[0]} ends with:\n" + "\n".join(tail)
