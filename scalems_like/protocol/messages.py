"""Every message exchanged between client, agent (master) and workers, declared once.

Wire format: a MessagePack array ``[PROTOCOL_VERSION, tag, field_1, field_2, ...]``. The envelope is never
pickled; a function task's code and arguments travel as cloudpickle *bytes inside* a task mapping and are
unpickled only by a worker, which only talks to its own master.

Who sends what::

    agent  → client   Hello, BootstrapEvents, TaskUpdates, Heartbeat, AgentStopping
    client → agent    SubmitTasks, CancelTasks, Heartbeat, Shutdown, Acknowledge
    worker → master   WorkerHello, TaskUpdates, Heartbeat
    master → worker   RunTasks, CancelTasks, Heartbeat, Shutdown

A *task mapping* (in SubmitTasks and RunTasks) has the keys of :data:`TASK_KEYS`; a *task update* (in
TaskUpdates) has ``uid``, ``state``, ``time``, ``host`` and, for some states, the keys of :data:`UPDATE_KEYS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import msgpack

from scalems_like.errors import ProtocolError

PROTOCOL_VERSION = 2
"""Bumped on every incompatible change; peers of another version are refused with a clear error."""

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Larger messages are refused before decoding."""

TASK_KEYS = frozenset({
    "uid", "name", "kind", "executable", "arguments", "function", "call_arguments", "environment",
    "working_directory", "sandbox", "cores", "gpus", "ranks", "stdin", "stdout", "stderr", "timeout",
    "retries", "idempotent", "tags", "gpu_ids", "attempt", "placement", "input_staging", "output_staging",
})
"""Keys of a task mapping on the wire; ``kind`` is ``"executable"`` or ``"function"``."""

UPDATE_KEYS = frozenset({
    "uid", "state", "time", "host", "worker", "exit_code", "reason", "return_value", "exception",
    "traceback", "output", "started", "attempt", "pid", "interrupted",
})
"""Keys a task update may carry."""


@dataclasses.dataclass(slots=True)
class Message:
    """Base of all message types; subclasses set ``tag`` and declare their fields with types."""

    tag: ClassVar[str] = ""


_REGISTRY: dict[str, type[Message]] = {}
_FIELD_TYPES: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {}
_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "float": (float, int), "list": list, "dict": dict, "bytes": bytes,
}


def declare(cls: type[Message]) -> type[Message]:
    """Register a message type under its tag (each tag exactly once)."""
    if not cls.tag or cls.tag in _REGISTRY:
        raise RuntimeError(f"message tag {cls.tag!r} of {cls.__name__} is empty or declared twice")
    _REGISTRY[cls.tag] = cls
    _FIELD_TYPES[cls.tag] = tuple(
        (field.name, _PYTHON_TYPES[str(field.type)]) for field in dataclasses.fields(cls)
    )
    return cls


@declare
@dataclasses.dataclass(slots=True)
class Hello(Message):
    """The agent introduces itself: which pilot, where, and the nodes/cores/GPUs it found."""

    tag: ClassVar[str] = "hello"
    pilot_uid: str
    host: str
    pid: int
    nodes: list  # [[node_name, cores, gpus], ...]
    time: float


@declare
@dataclasses.dataclass(slots=True)
class BootstrapEvents(Message):
    """The bootstrap's events, as the agent found them in the pilot sandbox (for clients that cannot read it)."""

    tag: ClassVar[str] = "bootstrap_events"
    events: list  # [[time, step, state, exit_code], ...]


@declare
@dataclasses.dataclass(slots=True)
class SubmitTasks(Message):
    tag: ClassVar[str] = "submit"
    tasks: list  # task mappings


@declare
@dataclasses.dataclass(slots=True)
class RunTasks(Message):
    tag: ClassVar[str] = "run"
    tasks: list  # task mappings, with "sandbox" and "gpu_ids" set by the master


@declare
@dataclasses.dataclass(slots=True)
class CancelTasks(Message):
    tag: ClassVar[str] = "cancel"
    uids: list


@declare
@dataclasses.dataclass(slots=True)
class TaskUpdates(Message):
    tag: ClassVar[str] = "updates"
    updates: list  # task updates, in the order they happened


@declare
@dataclasses.dataclass(slots=True)
class Heartbeat(Message):
    tag: ClassVar[str] = "heartbeat"
    time: float


@declare
@dataclasses.dataclass(slots=True)
class Shutdown(Message):
    tag: ClassVar[str] = "shutdown"
    reason: str


@declare
@dataclasses.dataclass(slots=True)
class AgentStopping(Message):
    """The agent is about to exit: ``final_state`` is the pilot state it ends in, ``reason`` why."""

    tag: ClassVar[str] = "stopping"
    final_state: str
    reason: str


@declare
@dataclasses.dataclass(slots=True)
class Acknowledge(Message):
    """The client has journaled these tasks' final updates: the agent stops re-sending them on reconnect."""

    tag: ClassVar[str] = "ack"
    uids: list


@declare
@dataclasses.dataclass(slots=True)
class WorkerHello(Message):
    tag: ClassVar[str] = "worker_hello"
    worker_uid: str
    node: str
    host: str
    pid: int


def encode(message: Message) -> bytes:
    """Serialize a message to its wire form."""
    fields = _FIELD_TYPES[message.tag]
    return msgpack.packb(
        [PROTOCOL_VERSION, message.tag, *[getattr(message, name) for name, _ in fields]], use_bin_type=True
    )


def decode(data: bytes) -> Message:
    """Parse and validate one wire message; raises :class:`ProtocolError` on anything malformed."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        frame: Any = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as error:  # msgpack raises several unrelated types
        raise ProtocolError(f"undecodable message ({type(error).__name__}: {error})") from None
    if not isinstance(frame, list) or len(frame) < 2:
        raise ProtocolError(f"message is not a [version, tag, ...] array: {str(frame)[:80]!r}")
    version, tag, *values = frame
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"peer speaks protocol version {version!r}, this side speaks {PROTOCOL_VERSION}: "
            "install the same scalems_like version on both sides"
        )
    cls = _REGISTRY.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message tag {tag!r}")
    fields = _FIELD_TYPES[tag]
    if len(values) != len(fields):
        raise ProtocolError(f"message {tag!r} has {len(values)} fields, expected {len(fields)}")
    for (name, expected), value in zip(fields, values, strict=True):
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise ProtocolError(f"message {tag!r} field {name!r} has type {type(value).__name__}")
    return cls(*values)
