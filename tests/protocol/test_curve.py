"""Secure channels, for real: rogue peers (without keys, with keys of their own) against a live session's client
socket and a live agent's worker socket; the key files' permissions; the insecure mode's warning."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

import scalems_like as sl
from scalems_like import protocol
from scalems_like.errors import ConfigError
from scalems_like.protocol import curve
from scalems_like.protocol.curve import AgentKeys, SessionKeys
from tests.processes import wait_until


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    opened: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield opened
    opened.destroy(linger=0)


def rogue_attempt(context: zmq.Context[zmq.Socket[bytes]], address: str, identity: str,
                  messages: list[protocol.Message], server_public: bytes | None) -> tuple[set[int], bool]:
    """Connect a DEALER as ``identity`` (a CURVE client with keys of its own if ``server_public`` is given), send
    ``messages``; returns the monitor events seen until a handshake failed (or for 3 s) and whether anything
    came back."""
    rogue = context.socket(zmq.DEALER)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.setsockopt_string(zmq.IDENTITY, identity)
    if server_public is not None:
        public, secret = zmq.curve_keypair()
        curve.connect_as(rogue, server_public, public, secret)
    monitor = rogue.get_monitor_socket()
    events: set[int] = set()
    failed = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
              | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    try:
        rogue.connect(address)
        for message in messages:
            rogue.send(protocol.encode(message))
        deadline = time.monotonic() + 3
        while not any(event & failed for event in events) and time.monotonic() < deadline:
            if monitor.poll(max(0.0, deadline - time.monotonic()) * 1000):
                events.add(recv_monitor_message(monitor)["event"])
        answered = bool(rogue.poll(1000))
    finally:
        rogue.disable_monitor()
        monitor.close()
        rogue.close()
    return events, answered


def test_rogue_peers_are_refused_by_the_client_and_the_agent_and_the_session_goes_on(
        session: sl.Session, local_pilot: sl.Pilot, context: zmq.Context[zmq.Socket[bytes]]) -> None:
    keys = SessionKeys.read(Path(session._journal.path).parent)  # type: ignore[union-attr]
    (client_address,) = session._engine.endpoints.values()
    log = (local_pilot.sandbox / "agent.log").read_text()
    worker_address = re.search(r"workers connect to (\S+) \(CurveZMQ\)", log)
    assert worker_address is not None, log
    (running,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["60"])])
    wait_until(lambda: running.state is sl.TaskState.RUNNING, what="the task runs")
    forged = protocol.TaskUpdates([{"uid": running.uid, "state": "FAILED", "time": 1.0, "attempt": 0,
                                    "reason": "forged"}])
    as_agent = [forged, protocol.AgentStopping("FAILED", "a rogue says the pilot failed")]
    as_worker = [protocol.WorkerHello("rogue", "vm", "vm", 1), forged]
    attempts = {
        "client, no keys": (client_address, local_pilot.uid, as_agent, None),
        "client, own keys": (client_address, local_pilot.uid, as_agent, keys.client_public),
        "agent, no keys": (worker_address.group(1), "rogue", as_worker, None),
        "agent, own keys": (worker_address.group(1), "rogue", as_worker, keys.agent_public),
    }
    for what, (address, identity, messages, server_public) in attempts.items():
        events, answered = rogue_attempt(context, address, identity, messages, server_public)
        assert zmq.EVENT_CONNECTED in events, f"{what}: never reached the socket ({events})"
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events, f"{what}: the handshake succeeded"
        if server_public is not None:  # keys of its own: ZAP says no (status 400)
            assert zmq.EVENT_HANDSHAKE_FAILED_AUTH in events, f"{what}: {events}"
        assert not answered, f"{what}: the rogue got an answer"
    (task,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-3,))])
    assert task.result(timeout=60) == 3
    assert local_pilot.state is sl.PilotState.ACTIVE
    assert running.state is sl.TaskState.RUNNING  # no forged update was read, by the client or the agent
    running.cancel()
    assert running.wait(timeout=30) is sl.TaskState.CANCELED and running.reason != "forged"
    assert "refused a peer with an unknown key" in (local_pilot.sandbox / "agent.log").read_text()


def test_key_files_are_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    keys = SessionKeys.generate()
    written = keys.for_agent.write(tmp_path)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    assert AgentKeys.read(tmp_path) == keys.for_agent
    assert "client_secret" not in json.loads(written.read_text())  # the client's secret never leaves the client
    session_file = keys.write(tmp_path)
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600 and SessionKeys.read(tmp_path) == keys
    written.chmod(0o644)
    with pytest.raises(ConfigError, match=r"agent.json: permissions 644 let others read the session keys"):
        AgentKeys.read(tmp_path)
    written.chmod(0o600)
    written.write_text('{"client_public": "short"}')
    with pytest.raises(ConfigError, match="not a key file"):
        AgentKeys.read(tmp_path)


def test_insecure_mode_works_and_says_so_loudly(isolated_dirs: Path) -> None:
    script = textwrap.dedent("""
        import scalems_like as sl
        with sl.Session() as session:
            pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=60))
            (task,) = session.submit_tasks([sl.TaskDescription(function=abs, args=(-7,))])
            print(task.result(timeout=60), (pilot.sandbox / "keys").exists(), flush=True)
            print(pilot.sandbox, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SCALEMS_LIKE_INSECURE": "1"}, check=True)
    answer, sandbox = result.stdout.splitlines()
    assert answer == "7 False"
    assert "INSECURE: session" in result.stderr and "anyone who can reach its ports" in result.stderr
    assert "INSECURE: agent of pilot pilot.0000" in (Path(sandbox) / "agent.log").read_text()
