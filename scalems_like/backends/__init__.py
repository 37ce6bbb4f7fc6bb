"""The engines a session can run on: ``native`` (our agents, :class:`~scalems_like.client.engine.Engine`) and
``radical`` (RADICAL-Pilot, :mod:`scalems_like.backends.radical`; ``pip install 'scalems_like[radical]'``)."""

from __future__ import annotations

from scalems_like.client.engine import Engine
from scalems_like.errors import ConfigError

BACKENDS = ("native", "radical")


def engine_for(backend: str, uid: str) -> Engine:
    """The engine of a session on ``backend`` (no I/O: RADICAL-Pilot is imported with the first pilot)."""
    if backend == "native":
        return Engine(uid)
    if backend == "radical":
        from scalems_like.backends.radical.engine import RadicalEngine

        return RadicalEngine(uid)
    raise ConfigError(f"Session: backend = {backend!r}: expected one of {', '.join(BACKENDS)}")
