"""This machine's own limit for benchmarks/scale.py's join time: CurveZMQ handshakes through one ZAP handler."""

from __future__ import annotations

import time

import zmq

from scalems_like.agent.limits import SPARE_FILES, raise_open_files_limit
from scalems_like.protocol import curve
from scalems_like.protocol.curve import SessionKeys


def curve_joins_per_s(count: int, backlog: int = 100) -> float:
    """``count`` DEALERs of one process connect with CurveZMQ to one ROUTER whose ZAP handler checks their key,
    and each sends one message: connections per second until the ROUTER has every message. ``backlog``: the
    ROUTER's ``ZMQ_BACKLOG`` (ZeroMQ's default: 100; the kernel caps it at ``net.core.somaxconn``): connections
    beyond it wait for their SYN to be sent again, a second later and more."""
    raise_open_files_limit(3 * count + SPARE_FILES)
    keys = SessionKeys.generate()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    context.set(zmq.MAX_SOCKETS, count + 64)
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.BACKLOG, backlog)
    curve.serve(router, keys.agent_public, keys.agent_secret)
    authenticator = curve.start_authenticator(context, {keys.agent_public}, "the limit's ROUTER")
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealers = []
    try:
        start = time.perf_counter()
        for _ in range(count):
            dealer = context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            curve.connect_as(dealer, keys.agent_public, keys.agent_public, keys.agent_secret)
            dealer.connect(f"tcp://127.0.0.1:{port}")
            dealer.send(b"hello")
            dealers.append(dealer)
        for _ in range(count):
            router.recv_multipart()
        return count / (time.perf_counter() - start)
    finally:
        for dealer in dealers:
            dealer.close()
        router.close()
        authenticator.stop()
        context.term()
