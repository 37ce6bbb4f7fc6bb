"""The node manager's fork server: a process that forks the node's workers from an already-imported parent.

Started by the node manager *before* it opens any ZeroMQ context (a process that forks must not carry another
process's ZeroMQ state into its children), it imports what a worker runs once; every worker is then a ``fork`` of
it — it starts in milliseconds and shares the parent's pages. The manager talks to it over a socket pair, one line
per request or report::

    manager → spawner   start UID
    spawner → manager   pid UID PID          the worker was forked
                        exit UID CODE        it ended: CODE as Popen.returncode gives it (negative: a signal)

The spawner reaps its workers through pidfds. It is their *subreaper*: the task processes of a worker that died
(executables run in sessions of their own) become its children, and it kills them (their process groups) at once —
on any node, with no help from the agent. When the manager goes (its end of the pair closes, or — through the
parent-death signal — it dies), the spawner SIGTERMs its workers, SIGKILLs those still there after a moment, and
exits; each worker also gets SIGTERM should the spawner itself die.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STRAY_INTERVAL = 5.0
"""Seconds between reaps of stray children (processes a task left behind, handed to this subreaper when it ended)."""
STOP_PATIENCE = 2.0
"""Seconds the spawner gives its workers, after SIGTERM, before SIGKILL (when the manager went)."""


def prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)


def die_with_parent(signal_number: int, parent: int) -> None:
    """Ask Linux to send ``signal_number`` to this process when its parent dies; exit now if ``parent`` (the pid
    the parent had) is already gone."""
    prctl(PR_SET_PDEATHSIG, signal_number)
    if os.getppid() != parent:
        os._exit(128 + signal_number)


class Spawner:
    """The manager's side of the fork server."""

    def __init__(self, connection: socket.socket, pid: int) -> None:
        self.connection = connection
        self.pid = pid
        self.buffer = b""

    @classmethod
    def start(cls, run_worker: Callable[[str], int], log_directory: str) -> Spawner:
        """Fork the spawner; ``run_worker(uid)`` is what a forked worker runs (its exit code), with its stdout and
        stderr going to ``LOG_DIRECTORY/UID.log``."""
        ours, theirs = socket.socketpair()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the spawner
            code = 0
            try:
                ours.close()
                die_with_parent(signal.SIGTERM, parent)
                serve(theirs, run_worker, log_directory)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        return cls(ours, pid)

    def fileno(self) -> int:
        return self.connection.fileno()

    def start_worker(self, uid: str) -> None:
        self.connection.sendall(f"start {uid}\n".encode())

    def read(self) -> list[tuple[str, str, int]]:
        """The reports that arrived: ``("pid", uid, pid)`` and ``("exit", uid, code)``; ``("gone", "", 0)`` if
        the spawner ended."""
        data = self.connection.recv(65536)
        if not data:
            return [("gone", "", 0)]
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        reports = []
        for line in lines:
            kind, uid, number = line.decode().split(" ")
            reports.append((kind, uid, int(number)))
        return reports

    def close(self) -> None:
        """Close the pair: the spawner stops its workers and exits."""
        self.connection.close()


def serve(connection: socket.socket, run_worker: Callable[[str], int], log_directory: str) -> None:
    """The spawner's loop: fork a worker per request, report pids and exits, stop everything when the manager goes."""
    selector = selectors.DefaultSelector()
    selector.register(connection, selectors.EVENT_READ)
    children: dict[int, tuple[str, int]] = {}  # pidfd -> (uid, pid)
    buffer = b""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    while True:
        events = selector.select(STRAY_INTERVAL)
        if not events:
            reap_strays({worker for _uid, worker in children.values()})
        for key, _mask in events:
            if key.fileobj is connection:
                data = connection.recv(65536)
                if not data:
                    stop_children(children)
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    uid = line.decode().split(" ", 1)[1]
                    pid = fork_worker(uid, run_worker, log_directory, connection)
                    pidfd = os.pidfd_open(pid)
                    children[pidfd] = (uid, pid)
                    selector.register(pidfd, selectors.EVENT_READ)
                    connection.sendall(f"pid {uid} {pid}\n".encode())
            else:
                pidfd = int(key.fd)
                uid, pid = children.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _pid, status = os.waitpid(pid, 0)
                kill_orphans({worker for _uid, worker in children.values()})
                connection.sendall(f"exit {uid} {os.waitstatus_to_exitcode(status)}\n".encode())


def fork_worker(uid: str, run_worker: Callable[[str], int], log_directory: str, connection: socket.socket) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        connection.close()
        die_with_parent(signal.SIGTERM, parent)
        output = os.open(os.path.join(log_directory, f"{uid}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        code = run_worker(uid)
    finally:
        os._exit(code)


def kill_orphans(workers: set[int]) -> None:
    """Kill the tasks of a worker that died: the children of this subreaper that are not workers and lead a session
    of their own (a worker starts each executable so), with their process groups; then reap what ended."""
    me = str(os.getpid())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in workers:
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                _state, parent, _group, session = stat.read().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue
        if parent == me and session == entry.name:
            with contextlib.suppress(OSError):
                os.killpg(int(entry.name), signal.SIGKILL)
    reap_strays(workers)


def reap_strays(workers: set[int]) -> None:
    """Reap the children of this subreaper that ended and are not workers (a worker's own end is reaped where its
    pidfd reports it, with its status)."""
    while True:
        try:
            ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if ended is None or ended.si_pid in workers:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(ended.si_pid, 0)


def stop_children(children: dict[int, tuple[str, int]]) -> None:
    """SIGTERM every worker, SIGKILL those still there after :data:`STOP_PATIENCE`, reap them all."""
    for _uid, pid in children.values():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_PATIENCE
    for pidfd, (_uid, pid) in children.items():
        selector = selectors.DefaultSelector()
        selector.register(pidfd, selectors.EVENT_READ)
        if not selector.select(max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        selector.close()
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        os.close(pidfd)
