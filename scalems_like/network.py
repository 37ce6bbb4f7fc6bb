"""Socket addresses shared by client and agent."""

from __future__ import annotations

import socket

import zmq


def bind_and_advertise(sock: zmq.Socket[bytes], address: str) -> str:
    """Bind ``sock`` on a random TCP port of ``address`` ("hostname": every interface); returns the address
    peers connect to."""
    if address == "hostname":
        port = sock.bind_to_random_port("tcp://*")
        return f"tcp://{socket.gethostname()}:{port}"
    port = sock.bind_to_random_port(f"tcp://{address}")
    return f"tcp://{address}:{port}"
