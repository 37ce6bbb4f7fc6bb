"""A real node manager process against a master socket played by the test (a CURVE ROUTER with the agent's keys).

The manager forks its workers, says they are ready, relays a task to a worker and its updates back, reports a
worker killed with SIGKILL at once, forks a replacement when asked, and stops (with its workers) when told to or
when the master falls silent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from scalems_like import protocol
from scalems_like.protocol import curve
from scalems_like.protocol.curve import SessionKeys
from tests.processes import alive

PATIENCE = 20.0


class FakeMaster:
    """The master's side: a CURVE ROUTER that reads the manager's routed frames."""

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self.manager = b""
        self.answer_heartbeats = True
        self.pending: list[tuple[bytes, bytes]] = []

    def receive(self, wanted: type[protocol.Message], worker: str | None = None,
                timeout: float = PATIENCE) -> tuple[str, Any]:
        """The next message of type ``wanted`` (from ``worker``, if given), skipping others: (worker, message).

        A manager's multipart carries many messages; those after the one returned wait for the next call."""
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                sender, data = self.pending.pop(0)
                message = protocol.decode(data)
                if isinstance(message, protocol.Heartbeat) and self.answer_heartbeats:
                    self.send(protocol.Heartbeat(time.time()))  # (a loaded machine may take longer than the
                    continue                                     # manager's timeout between two of our steps)
                if isinstance(message, wanted) and (worker is None or sender.decode() == worker):
                    return sender.decode(), message
            if not self.socket.poll(max(0.0, deadline - time.monotonic()) * 1000):
                raise AssertionError(f"no {wanted.__name__} within {timeout} s")
            self.manager, *frames = self.socket.recv_multipart()
            self.pending += zip(frames[0::2], frames[1::2], strict=True)

    def ready_workers(self, count: int) -> list[Any]:
        """``[[uid, pid], ...]`` of the manager's hellos until ``count`` workers said they are ready (its first hello
        may come before any is)."""
        workers: list[Any] = []
        while len(workers) < count:
            _, hello = self.receive(protocol.NodeHello)
            workers += hello.workers
        return workers

    def send(self, message: protocol.Message, worker: str = "") -> None:
        self.socket.send_multipart([self.manager, worker.encode(), protocol.encode(message)])


@pytest.fixture
def master(tmp_path: Path) -> Iterator[tuple[FakeMaster, str]]:
    keys = SessionKeys.generate()
    keys.for_agent.write(tmp_path)
    agent = keys.for_agent
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    authenticator = curve.start_authenticator(context, {agent.agent_public}, "the test's master")
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    curve.serve(socket, agent.agent_public, agent.agent_secret)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    yield FakeMaster(socket), f"tcp://127.0.0.1:{port}"
    socket.close()
    authenticator.stop()
    context.destroy(linger=0)


def start_manager(address: str, sandbox: Path, workers: int, timeout: float = 10) -> subprocess.Popen[bytes]:
    (sandbox / "workers").mkdir(exist_ok=True)
    environment = {**os.environ, "SCALEMS_PILOT_SANDBOX": str(sandbox), "SCALEMS_NODE": "n1",
                   "SCALEMS_HEARTBEAT_INTERVAL": "0.2", "SCALEMS_HEARTBEAT_TIMEOUT": str(timeout)}
    return subprocess.Popen([sys.executable, "-m", "scalems_like.overlay.node_manager", address, "m1", str(workers),
                             str(sandbox / "workers")], env=environment)


def run_task(uid: str, sandbox: Path) -> dict[str, Any]:
    return {"uid": uid, "kind": "executable", "executable": "/bin/echo", "arguments": [uid], "cores": 1, "gpus": 0,
            "ranks": 1, "stdout": "out", "stderr": "err", "sandbox": str(sandbox / uid), "environment": {},
            "attempt": 0}


def test_a_node_manager_forks_relays_reports_replaces_and_stops(master: tuple[FakeMaster, str],
                                                                 tmp_path: Path) -> None:
    fake, address = master
    manager = start_manager(address, tmp_path, 2)
    try:
        ready: dict[str, int] = {}
        while len(ready) < 2:
            _, hello = fake.receive(protocol.NodeHello)
            assert hello.node == "n1" and hello.pid == manager.pid
            ready.update((uid, pid) for uid, pid in hello.workers)
        assert sorted(ready) == ["m1.w0000", "m1.w0001"] and all(alive(pid) for pid in ready.values())

        task = run_task("t1", tmp_path)
        del task["sandbox"]  # (set by the node manager)
        fake.send(protocol.NodeTasks(str(tmp_path), [["m1.w0001", [task]]]))  # (the node's tasks of a pass)
        states = []
        while "DONE" not in states:
            sender, updates = fake.receive(protocol.TaskUpdates)
            assert sender == "m1.w0001"
            states += [update["state"] for update in updates.updates if update["uid"] == "t1"]
        assert (tmp_path / "t1" / "out").read_text() == "t1\n"

        os.kill(ready["m1.w0000"], signal.SIGKILL)
        _, exited = fake.receive(protocol.WorkersExited, timeout=5)
        assert exited.workers == [["m1.w0000", -signal.SIGKILL, ""]]
        fake.send(protocol.StartWorkers(["m1.r0001"]))
        _, hello = fake.receive(protocol.NodeHello)
        assert [uid for uid, _ in hello.workers] == ["m1.r0001"]

        pids = [ready["m1.w0001"], hello.workers[0][1]]
        fake.send(protocol.Shutdown("the test is over"))
        assert manager.wait(timeout=PATIENCE) == 0
        assert not any(map(alive, pids)), "a worker outlived its node manager"
    finally:
        manager.kill()
        manager.wait()


def test_a_node_manager_whose_master_falls_silent_stops_with_its_workers(master: tuple[FakeMaster, str],
                                                                          tmp_path: Path) -> None:
    fake, address = master
    fake.answer_heartbeats = False
    manager = start_manager(address, tmp_path, 1, timeout=1.5)
    try:
        (_uid, pid), = fake.ready_workers(1)
        assert manager.wait(timeout=PATIENCE) == 0  # the fake master never answers its heartbeats
        assert not alive(pid)
        assert "stopping: master silent for" in (tmp_path / "workers" / "m1.w0000.log").read_text()  # (told why)
    finally:
        manager.kill()
        manager.wait()


def test_a_node_manager_introduces_itself_before_any_worker_is_ready(master: tuple[FakeMaster, str],
                                                                     tmp_path: Path) -> None:
    """With no worker at all, it says hello (so that the master knows it, and hears of workers that end before
    they are ready: such a manager used to be dropped as "never said hello" until it fell silent); the workers the
    master asks for then say theirs."""
    fake, address = master
    manager = start_manager(address, tmp_path, 0)
    try:
        _, hello = fake.receive(protocol.NodeHello)
        assert (hello.node, hello.pid, hello.workers) == ("n1", manager.pid, [])
        fake.send(protocol.StartWorkers(["m1.r0001"]))
        _, hello = fake.receive(protocol.NodeHello)
        assert [uid for uid, _ in hello.workers] == ["m1.r0001"]
        fake.send(protocol.Shutdown("the test is over"))
        assert manager.wait(timeout=PATIENCE) == 0
    finally:
        manager.kill()
        manager.wait()


def test_node_managers_and_workers_import_only_what_they_run() -> None:
    probe = ("import sys, scalems_like.overlay.node_manager, scalems_like.overlay.worker\n"
             "print('\\n'.join(sorted(sys.modules)))")
    modules = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                 timeout=60).stdout.split())
    heavy = ("scalems_like.client", "scalems_like.cli", "scalems_like.analytics", "scalems_like.launcher",
             "sqlite3", "yaml", "rich", "psij")
    assert not sorted(name for name in modules if name.startswith(heavy))


def test_the_task_of_a_worker_killed_under_it_is_killed_on_its_node(master: tuple[FakeMaster, str],
                                                                     tmp_path: Path) -> None:
    """An executable runs in a session of its own, so a worker's death leaves it running; the node manager's fork
    server (its subreaper) kills it at once, without the agent (which may be on another node)."""
    fake, address = master
    manager = start_manager(address, tmp_path, 1)
    try:
        ((uid, pid),) = fake.ready_workers(1)
        task = {**run_task("sleeper", tmp_path), "executable": "/bin/sleep", "arguments": ["300"]}
        fake.send(protocol.RunTasks([task]), uid)
        running = None
        while running is None:
            _, updates = fake.receive(protocol.TaskUpdates)
            running = next((update["pid"] for update in updates.updates if update["state"] == "RUNNING"), None)
        assert alive(running)
        os.kill(pid, signal.SIGKILL)
        _, exited = fake.receive(protocol.WorkersExited, timeout=5)
        assert exited.workers == [[uid, -signal.SIGKILL, ""]]
        assert not alive(running), "the task of the killed worker still runs"
    finally:
        manager.kill()
        manager.wait()


def test_a_node_manager_that_sent_something_since_its_last_beat_sends_no_heartbeat() -> None:
    """Its steps on a real socket pair, no process: what it relayed in a heartbeat interval says the node is alive
    (at 4 096 nodes, 4 096 heartbeats a second fewer for the master to read); a quiet interval still gets one."""
    from scalems_like.overlay.node_manager import NodeManager

    manager = NodeManager("tcp://127.0.0.1:1", "m1", "n1", 0, "/nonexistent", heartbeat_interval=1.0,
                          heartbeat_timeout=10.0, keys=None, environment={})
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        master, manager.master = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        master.bind("inproc://master")
        manager.master.connect("inproc://master")
        manager.introduced = True  # (its NodeHello is another test's)

        def sent() -> list[str]:
            manager.handle_flush()
            frames = master.recv_multipart() if master.poll(200) else []
            return [protocol.decode(data).tag for data in frames[1::2]]

        manager.upward += [b"m1.w0000", protocol.encode(protocol.TaskUpdates([]))]
        assert sent() == ["updates"]
        manager.last_beat = 0.0
        manager.handle_heartbeats()
        assert sent() == []  # the updates said it
        manager.last_beat = 0.0
        manager.handle_heartbeats()
        assert sent() == ["heartbeat"]  # a quiet interval
        manager.last_beat = 0.0
        manager.handle_heartbeats()
        assert sent() == ["heartbeat"]  # (its heartbeat is not taken for something else it said)
    finally:
        context.destroy(linger=0)
