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


def unbounded(sock: zmq.Socket[bytes]) -> zmq.Socket[bytes]:
    """No high-water marks: messages are batched (few and large), and a full queue must never drop one
    (a ROUTER drops silently) nor block both peers on each other."""
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    return sock
