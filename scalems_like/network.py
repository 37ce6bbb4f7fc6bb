"""Socket addresses shared by client and agent."""

from __future__ import annotations

import math
import socket

import zmq

from scalems_like.protocol.messages import MAX_MESSAGE_BYTES


def bind_and_advertise(sock: zmq.Socket[bytes], address: str) -> str:
    """Bind ``sock`` on a random TCP port of ``address`` ("hostname": every interface); returns the address
    peers connect to."""
    if address == "hostname":
        port = sock.bind_to_random_port("tcp://*")
        return f"tcp://{socket.gethostname()}:{port}"
    port = sock.bind_to_random_port(f"tcp://{address}")
    return f"tcp://{address}:{port}"


RECEIVE_QUEUE = 256
"""Messages a socket queues per peer before it stops reading from that peer (TCP pushes back to the sender)."""


def message_socket(sock: zmq.Socket[bytes]) -> zmq.Socket[bytes]:
    """A socket for batched protocol messages: what it sends is never dropped (no send high-water mark: a full
    ROUTER queue drops silently, and two peers blocked on each other's full queues would deadlock); what it
    receives is bounded — at most :data:`RECEIVE_QUEUE` messages per peer wait, then that peer is pushed back
    (a flood cannot grow the receiver's memory), and a message larger than ``MAX_MESSAGE_BYTES`` disconnects its
    sender before it is read into memory."""
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    return sock


def milliseconds(seconds: float) -> int:
    """A poll's timeout in whole milliseconds, rounded up (a positive wait never becomes a busy 0)."""
    return math.ceil(seconds * 1000)
