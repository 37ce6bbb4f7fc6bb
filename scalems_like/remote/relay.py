"""The gateway's relay: each TCP connection of an agent, spliced byte for byte to the client's forwarded socket.

The agents speak ZMTP with CurveZMQ to the client, end to end: the relay sees only the encrypted stream (it holds
no keys and reads nothing of it), so the one thing it listens for unauthenticated is the opening of a
connection whose first bytes must be the client's CURVE handshake, which the client, not the relay, checks. The
client's end is a unix socket on the login node that ssh forwards (``ssh -O forward -R SOCKET:127.0.0.1:PORT``)
to the client's own loopback socket; while no client is attached (the laptop left) an agent's connection is
closed at once, and ZeroMQ connects again by itself.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

log = logging.getLogger("scalems_like.remote.gateway")

CHUNK = 1 << 16


class Relay:
    """Accepts agents on ``listener`` (a bound, listening TCP socket) and splices each to :attr:`target`."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.target: str | None = None
        """The unix socket the client's ssh forwards (None: no client attached)."""
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()

    def start(self) -> None:
        threading.Thread(target=self.accept, name="relay-accept", daemon=True).start()

    def retarget(self, path: str | None) -> None:
        """Agents' new connections go to ``path`` from now on; connections to the old one are closed (the client
        that held them is gone), so that their agents connect again, to the new client."""
        with self.lock:
            self.target = path
            stale, self.open = self.open, set()
        for sock in stale:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def accept(self) -> None:
        while True:
            try:
                agent, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed: the gateway stops
            threading.Thread(target=self.splice, args=(agent,), name="relay", daemon=True).start()

    def splice(self, agent: socket.socket) -> None:
        with self.lock:
            target = self.target
        if target is None:
            agent.close()
            return
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(target)
        except OSError as error:
            log.warning("relay: the client's socket %s does not answer (%s): connection of an agent closed",
                        target, error)
            client.close()
            agent.close()
            return
        with self.lock:
            self.open.update((agent, client))
        back = threading.Thread(target=pump, args=(client, agent), name="relay-back", daemon=True)
        back.start()
        pump(agent, client)
        back.join()
        with self.lock:
            self.open.difference_update((agent, client))
        agent.close()
        client.close()


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until either end closes; then end both directions."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
