"""The launcher processes of an agent's node managers, as the master's loop watches them.

One process per node manager when forked or started through ssh, one for all of them when started by srun or mpiexec
(the managers are named ``PREFIX.RANK``). Each is watched through a pidfd registered in the master's poll, so a
process that ends wakes the loop at once. When a batch system ends the job (scancel, walltime) every process gets
SIGTERM, the workers' often a moment before the agent's: :func:`termination_signaled` lets the master wait for its
own, whose reason (the job's end) is the better explanation.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import zmq

from scalems_like.agent.launch import Launched

TERMINATION_PATIENCE = 1.0
"""Seconds to wait for the agent's own SIGTERM after a worker or a task ended by one (a job's end signals every
process of it; the agent's reason — the pilot ends, its tasks are interrupted — is the better one)."""


class WorkerProcesses:
    """Launched processes, by pidfd, with the node managers each runs."""

    def __init__(self, poller: zmq.Poller) -> None:
        self.poller = poller
        self.by_pidfd: dict[int, Launched] = {}

    def watch(self, processes: list[Launched]) -> None:
        """Watch launched processes."""
        for launched in processes:
            pidfd = os.pidfd_open(launched.process.pid)
            self.by_pidfd[pidfd] = launched
            self.poller.register(pidfd, zmq.POLLIN)

    def ended(self, events: dict[Any, int]) -> list[tuple[Launched, int]]:
        """(launched, exit code) of the watched processes whose pidfd the poll reported; reaped, unwatched."""
        found = []
        for pidfd in [fd for fd in events if isinstance(fd, int) and fd in self.by_pidfd]:
            launched = self.by_pidfd.pop(pidfd)
            self.poller.unregister(pidfd)
            os.close(pidfd)
            found.append((launched, launched.process.wait()))
        return found

    def stop_node(self, node: str) -> None:
        """SIGKILL the processes (and their process groups, if they lead one: ssh, srun) that run the manager of
        ``node`` alone (a node taken out of the schedule before it joined: its launcher may hang)."""
        for launched in self.by_pidfd.values():
            if launched.process.poll() is None and all(where == node for _uid, where in launched.managers):
                pid = launched.process.pid
                try:
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        launched.process.kill()
                except OSError:
                    continue

    def __bool__(self) -> bool:
        """Some watched process has not been seen to end."""
        return bool(self.by_pidfd)

    def alive(self) -> bool:
        return any(launched.process.poll() is None for launched in self.by_pidfd.values())

    def terminate(self) -> None:
        for launched in self.by_pidfd.values():
            if launched.process.poll() is None:
                launched.process.terminate()


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
    """Where the last written worker log is and how it ends (for a pilot whose every node is out of the schedule)."""
    logs = sorted((sandbox / "workers").glob("*.log"), key=lambda path: path.stat().st_mtime)
    if not logs:
        return "the worker log ends with:\n"
    return f"{logs[-1]} ends with:\n" + file_tail(logs[-1], lines)


def file_tail(path: Path, lines: int = 10) -> str:
    """The last ``lines`` lines of a text file, stripped ('' if it is missing or empty)."""
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def launcher_report(launched: Launched, lines: int = 10) -> str:
    """How the launcher of a node's workers stands, and how its output ends (for a node that never joined)."""
    code = launched.process.poll()
    state = "still runs" if code is None else f"ended with code {code}"
    tail = file_tail(launched.output, lines)
    output = f"its output {launched.output} ends with:\n{tail}" if tail else f"its output {launched.output} is empty"
    return f"its launcher (pid {launched.process.pid}) {state}; {output}"
