"""A real worker process (its own loop, a real ROUTER playing its master): how its task updates travel."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from scalems_like import protocol

WINDOW = 2.0
"""The worker's FLUSH_INTERVAL in this test: long enough that short executables all end inside one window."""

START = f"""
import sys
from scalems_like.overlay import worker
worker.FLUSH_INTERVAL = {WINDOW}
sys.exit(worker.main(sys.argv[1:]))
"""


@pytest.fixture
def master() -> Iterator[zmq.Socket[bytes]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVTIMEO, 30_000)
    yield router
    router.close()
    context.term()


def executable(sandbox: Path, number: int) -> dict[str, Any]:
    return {"uid": f"task.{number:06d}", "kind": "executable", "executable": "/bin/true", "arguments": [],
            "sandbox": str(sandbox / f"task.{number:06d}"), "ranks": 1, "cores": 1, "stdout": "stdout",
            "stderr": "stderr", "timeout": None}


def test_short_executables_updates_travel_together_within_the_flush_interval(
        master: zmq.Socket[bytes], tmp_path: Path) -> None:
    """A running executable's updates wait (up to FLUSH_INTERVAL) for the next ones: one message per task
    (RUNNING, then the end with the next RUNNING) made the worker, the master and the client spend more on messages
    than on the launch."""
    port = master.bind_to_random_port("tcp://127.0.0.1")
    environment = {**os.environ, "SCALEMS_INSECURE": "1", "SCALEMS_HEARTBEAT_INTERVAL": "30"}
    worker = subprocess.Popen([sys.executable, "-c", START, f"tcp://127.0.0.1:{port}", "w1"], env=environment,
                              stderr=subprocess.DEVNULL)
    try:
        identity, data = master.recv_multipart()
        assert isinstance(protocol.decode(data), protocol.WorkerHello)
        count = 8
        master.send_multipart([identity, protocol.encode(protocol.RunTasks(
            [executable(tmp_path, number) for number in range(count)]))])
        messages: list[list[dict[str, Any]]] = []
        final = 0
        while final < count:
            message = protocol.decode(master.recv_multipart()[1])
            if isinstance(message, protocol.TaskUpdates):
                messages.append(message.updates)
                final += sum(update["state"] == "DONE" for update in message.updates)
        master.send_multipart([identity, protocol.encode(protocol.Shutdown("test over"))])
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    states = [update["state"] for updates in messages for update in updates]
    assert states == ["RUNNING", "DONE"] * count
    assert len(messages) <= 3, f"{count} tasks' updates came in {len(messages)} messages: {messages}"
