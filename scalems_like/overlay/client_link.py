"""The master's connection to its client, made to outlive clients.

The agent keeps running its tasks when the client goes away. While the client is silent, the link looks for a new
client address in ``PILOT_SANDBOX/client.json`` (written by a client that reattaches) and reconnects to it; after
``client_grace`` seconds without any client the agent stops. Every task update the agent sends is appended to
``PILOT_SANDBOX/agent.journal`` (see :mod:`scalems_like.protocol.records`), and final updates are kept until the
client acknowledges that its journal has them: a reconnecting client receives everything it missed (at least
once; the client's journal makes it exactly once). ``PILOT_SANDBOX/agent.alive`` is touched on every heartbeat
and ``agent.stopped`` written when the agent ends, so that a client can tell a live agent from a gone one.

The link also carries flow control (:mod:`scalems_like.overlay.flow`): the agent's task window, announced after
the hello (again to a reconnecting client) and whenever it changes enough. A task's uid is remembered until the
client acknowledges its end: what a client may send again is bounded by the window too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import zmq

from scalems_like import protocol
from scalems_like.agent.config import AgentConfig
from scalems_like.errors import ProtocolError
from scalems_like.network import message_socket
from scalems_like.overlay.flow import worth_announcing
from scalems_like.paths import write_private_file
from scalems_like.protocol import curve
from scalems_like.protocol.curve import AgentKeys
from scalems_like.protocol.records import ALIVE_FILE, STOPPED_FILE, append_record, read_client_address
from scalems_like.protocol.records import FILE_NAME as JOURNAL_FILE
from scalems_like.protocol.tasks import TaskUpdate, is_final

log = logging.getLogger("scalems_like.master")

MESSAGES_PER_PASS = 16
"""Client messages the master takes per loop pass (a SubmitTasks carries up to 2 000 tasks)."""
ADDRESS_CHECK_INTERVAL = 0.5
"""Seconds between looks for a reattached client's address (``client.json``; a client reattaches only once the
one before it is gone: the session's client lock)."""


class ClientLink:
    def __init__(self, config: AgentConfig, keys: AgentKeys | None) -> None:
        """A link that will connect with the agent's CurveZMQ ``keys`` (None: insecure); no I/O."""
        self.config = config
        self.keys = keys
        self.sandbox = Path(config.pilot_sandbox)
        self.socket: zmq.Socket[bytes] | None = None
        self.address = config.client_address
        self.reattached: tuple[str, float] | None = None
        self.seen = time.time()
        self.lost = False
        self.last_address_check = 0.0
        self.unacked: dict[str, TaskUpdate] = {}
        """Final updates the client has not acknowledged, by task uid."""
        self.known: set[str] = set()
        """The uids of the tasks submitted here whose end the client has not acknowledged (a reattached client
        re-sends what its journal does not have final)."""
        self.window = 0
        """The task window last announced to the client (0: none yet)."""
        self.journal_fd = -1
        self.greeting: list[protocol.Message] = []
        self.readiness: dict[str, list[Any]] = {}
        """Every node's last reported ``[node, ready_cores, cores, out]`` (a client that connects gets them all)."""
        self.drops = protocol.DropLog(log)

    # -- life cycle ----------------------------------------------------------------------------------
    def open(self, context: zmq.Context[zmq.Socket[bytes]], poller: zmq.Poller,
             greeting: list[protocol.Message]) -> None:
        """Open the journal, connect to the client (a reattached one if it left its address) and greet it."""
        self.journal_fd = os.open(self.sandbox / JOURNAL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):  # who the agent is: a client that reattaches on this host checks the pid
            who = {"pid": os.getpid(), "host": socket.gethostname()}
            write_private_file(self.sandbox / ALIVE_FILE, json.dumps(who))
        self.greeting = greeting
        self.reattached = read_client_address(self.sandbox)
        self.address = self.reattached[0] if self.reattached else self.config.client_address
        self.connect(context, poller)

    def connect(self, context: zmq.Context[zmq.Socket[bytes]], poller: zmq.Poller) -> None:
        if self.socket is not None:
            poller.unregister(self.socket)
            self.socket.close(linger=0)
        self.socket = message_socket(context.socket(zmq.DEALER))
        self.socket.setsockopt(zmq.LINGER, 5000)
        self.socket.setsockopt_string(zmq.IDENTITY, self.config.pilot_uid)
        if self.keys is not None:
            curve.connect_as(self.socket, self.keys.client_public, self.keys.agent_public, self.keys.agent_secret)
        self.socket.connect(self.address)
        poller.register(self.socket, zmq.POLLIN)
        log.info("connecting to the client at %s", self.address)
        self.greet()

    def greet(self) -> None:
        """Hello (and the bootstrap events), how much of the pilot serves, the task window, then every final update
        the client has not acknowledged."""
        for message in self.greeting:
            self.send(message)
        if self.readiness:
            self.send(protocol.NodesReady(time.time(), list(self.readiness.values())))
        if self.window:
            self.send(protocol.TaskWindow(self.window))
        if self.unacked:
            self.send(protocol.TaskUpdates(list(self.unacked.values())))

    def close(self, final_state: str, reason: str) -> None:
        with contextlib.suppress(OSError):
            write_private_file(self.sandbox / STOPPED_FILE,
                               json.dumps({"state": final_state, "reason": reason, "time": time.time()}))
        if self.journal_fd >= 0:
            os.close(self.journal_fd)
            self.journal_fd = -1
        if self.socket is not None:
            self.socket.close()

    # -- traffic -------------------------------------------------------------------------------------
    def receive(self, limit: int = MESSAGES_PER_PASS) -> list[protocol.Message]:
        """The client's messages waiting, at most ``limit`` (the rest on the master's next pass: one pass that took
        every chunk of a large window at once held its tasks, their updates and their encoding at the same time,
        and heard no node meanwhile)."""
        assert self.socket is not None
        messages: list[protocol.Message] = []
        while len(messages) < limit:
            try:
                data = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                messages.append(protocol.decode(data))
            except ProtocolError as error:
                self.drops.dropped("the client", error)
        if messages:
            self.seen = time.time()
            if self.lost:
                log.info("the client is back")
                self.lost = False
        for message in messages:
            if isinstance(message, protocol.Acknowledge):
                for uid in message.uids:
                    self.unacked.pop(uid, None)
                    self.known.discard(uid)  # (its end is in the client's journal: never sent again)
        return messages

    def new_tasks(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tasks of a SubmitTasks not seen before (a reattached client may send some again)."""
        fresh = [task for task in tasks if task.get("uid") not in self.known]
        self.known.update(task["uid"] for task in fresh)
        return fresh

    def send(self, message: protocol.Message) -> None:
        assert self.socket is not None
        self.socket.send(protocol.encode(message))

    def announce_window(self, size: int) -> None:
        """Tell the client the agent's task window if it changed enough since the last one announced (before the
        link is open: it goes with the greeting)."""
        if worth_announcing(size, self.window):
            self.window = size
            if self.socket is not None:
                self.send(protocol.TaskWindow(size))

    def send_updates(self, updates: list[TaskUpdate]) -> None:
        """Journal, then send (the same bytes: packed once); final updates are kept until acknowledged."""
        message = protocol.encode(protocol.TaskUpdates(updates))
        append_record(self.journal_fd, message)
        for update in updates:
            if is_final(update):
                self.unacked[update["uid"]] = update
        assert self.socket is not None
        self.socket.send(message)

    def send_events(self, events: list[list[Any]]) -> None:
        """Journal, then send an AgentEvents message (a reattached client takes those it missed from the journal)."""
        message = protocol.encode(protocol.AgentEvents(events))
        append_record(self.journal_fd, message)
        assert self.socket is not None
        self.socket.send(message)

    def send_readiness(self, now: float, nodes: list[list[Any]]) -> None:
        """Journal, then send a NodesReady message for ``nodes`` (those that changed; the first time all)."""
        self.readiness.update((node[0], node) for node in nodes)
        message = protocol.encode(protocol.NodesReady(now, nodes))
        append_record(self.journal_fd, message)
        assert self.socket is not None
        self.socket.send(message)

    # -- time ----------------------------------------------------------------------------------------
    def heartbeat(self, now: float) -> None:
        self.send(protocol.Heartbeat(now))
        with contextlib.suppress(OSError):
            (self.sandbox / ALIVE_FILE).touch(mode=0o600)

    def next_check(self, now: float) -> float:
        """When :meth:`check` next looks for a reattached client's address: the master's loop wakes for it,
        however few messages come (one node manager's heartbeat a second)."""
        return self.last_address_check + ADDRESS_CHECK_INTERVAL

    def check(self, now: float, context: zmq.Context[zmq.Socket[bytes]], poller: zmq.Poller) -> str | None:
        """Follow a reattached client's address; say when the client's grace period ran out."""
        silent = now - self.seen
        if silent > self.config.client_grace:
            return f"no client for {silent:.0f} s (client grace period {self.config.client_grace:g} s)"
        if silent > self.config.heartbeat_timeout and not self.lost:
            self.lost = True
            log.warning("client silent for %.0f s; tasks go on, results are kept for a client that reattaches "
                        "(up to %g s)", silent, self.config.client_grace)
        if now - self.last_address_check >= ADDRESS_CHECK_INTERVAL:  # (not only once the old one fell silent: a
            # client that reattaches right after the one before it was killed is followed within half a second)
            self.last_address_check = now
            reattached = read_client_address(self.sandbox)
            if reattached is not None and reattached != self.reattached:
                log.info("a client reattached at %s", reattached[0])
                self.reattached = reattached
                self.address = reattached[0]
                self.seen = now
                self.connect(context, poller)
        return None
