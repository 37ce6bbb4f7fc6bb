"""Every message exchanged between client, agent (master) and workers, declared once.

Wire format: a MessagePack array ``[PROTOCOL_VERSION, tag, field_1, field_2, ...]``. The envelope is never
pickled; a function task's code and arguments travel as cloudpickle *bytes inside* a task mapping and are
unpickled only by a worker, which only talks to its own master.

Who sends what::

    agent  → client   Hello, TaskWindow, BootstrapEvents, NodesReady, TaskUpdates, AgentEvents, Heartbeat,
                      AgentStopping
    client → agent    SubmitTasks, CancelTasks, Heartbeat, Shutdown, Acknowledge
    manager → master  NodeHello, WorkersExited, Heartbeat; and its workers' TaskUpdates, GiveBack
    master → manager  StartWorkers, NodeTasks, Heartbeat, Shutdown; and its workers' CancelTasks, Shutdown
    worker → manager  WorkerHello, TaskUpdates, GiveBack, Heartbeat (node-local)
    manager → worker  RunTasks, CancelTasks, Heartbeat, Shutdown (node-local)

Between master and node manager every message travels in a *routed* multipart frame pair ``[worker, message]``:
``worker`` is the uid of the worker the message is for or from, empty for the node manager itself. A manager may
send several pairs in one multipart (``[worker_1, message_1, worker_2, message_2, ...]``): it forwards its
workers' messages without decoding them, batched per pass of its loop. The master sends a node's new tasks as one
:class:`NodeTasks` per pass for the manager itself (it hands each worker its own as a RunTasks): at 4 096 nodes of
128 workers a pass gives most workers one task, and one message per worker cost the master more than the tasks.

A *task mapping* (in SubmitTasks and RunTasks) has the keys of :data:`TASK_KEYS`; a *task update* (in
TaskUpdates) has ``uid``, ``state``, ``time``, ``host`` and, for some states, the keys of :data:`UPDATE_KEYS`.
:func:`decode` checks all of it — the types of every field and of what the lists hold, task uids (they name
sandbox directories) and that a task's stdin/stdout/stderr stay inside its sandbox — and raises
:class:`ProtocolError` for anything else: a malformed message is dropped and logged by its receiver, never used.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack

from scalems_like.errors import ProtocolError, ProtocolVersionError
from scalems_like.protocol.tasks import ResultFile, TaskMapping, TaskUpdate, required_keys, runtime_types

PROTOCOL_VERSION = 7
"""Bumped on every incompatible change; peers of another version are refused with a clear error."""

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Larger messages are refused before decoding."""

_NONE = type(None)
_NUMBER = (int, float)

TASK_TYPES = runtime_types(TaskMapping)
"""Keys of a task mapping on the wire and their types, derived from :class:`~scalems_like.protocol.tasks.TaskMapping`
(the declaration); ``kind`` is ``"executable"`` or ``"function"``. ``results_in_sandbox_above`` is set by the master
on function tasks (the resource config's key of that name)."""
TASK_KEYS = frozenset(TASK_TYPES)
_TASK_REQUIRED = required_keys(TaskMapping)

UPDATE_TYPES = runtime_types(TaskUpdate)
"""Keys a task update may carry, and their types, derived from :class:`~scalems_like.protocol.tasks.TaskUpdate`. A
DONE function task's value travels as ``return_value`` (its cloudpickle), or, when larger than the task's
``results_in_sandbox_above``, stays in a file of the task sandbox and ``return_value_file`` says which:
:data:`RESULT_FILE_TYPES`."""
UPDATE_KEYS = frozenset(UPDATE_TYPES)
_UPDATE_REQUIRED = required_keys(TaskUpdate)

RESULT_FILE_TYPES = runtime_types(ResultFile)
"""The ``return_value_file`` of an update: the file's name in the task sandbox, its size and its SHA-256 (hex)."""
_RESULT_FILE_REQUIRED = required_keys(ResultFile)

_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Task uids name sandbox directories: no separators, no leading dot."""


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
    """Register a message type under its tag (each tag exactly once). A field's type is checked by its origin:
    ``list[list[Any]]`` as ``list``."""
    if not cls.tag or cls.tag in _REGISTRY:
        raise RuntimeError(f"message tag {cls.tag!r} of {cls.__name__} is empty or declared twice")
    _REGISTRY[cls.tag] = cls
    _FIELD_TYPES[cls.tag] = tuple(
        (field.name, _PYTHON_TYPES[str(field.type).split("[", 1)[0]]) for field in dataclasses.fields(cls)
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
    nodes: list[Any]  # [[node_name, cores, gpus], ...]
    time: float


@declare
@dataclasses.dataclass(slots=True)
class TaskWindow(Message):
    """Flow control: the agent takes at most ``size`` unfinished tasks (queued or running) from this client.
    The client's *credit* with the agent is ``size`` minus its tasks sent there and not yet final: it sends only
    while that is positive, so a task's final update returns its credit. Sent after Hello and whenever the agent's
    window changes (its workers, the observed task durations)."""

    tag: ClassVar[str] = "task_window"
    size: int


@declare
@dataclasses.dataclass(slots=True)
class BootstrapEvents(Message):
    """The bootstrap's events, as the agent found them in the pilot sandbox (for clients that cannot read it)."""

    tag: ClassVar[str] = "bootstrap_events"
    events: list[Any]  # [[time, step, state, exit_code], ...]


@declare
@dataclasses.dataclass(slots=True)
class AgentEvents(Message):
    """What happened in the agent besides task updates, for the session's profile: workers started and stopped,
    scheduler decisions. Few, batched per master loop pass: ``[[time, component, where, event, uid, detail], ...]``,
    the time on the agent's clock."""

    tag: ClassVar[str] = "agent_events"
    events: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class NodesReady(Message):
    """How much of the pilot serves: ``[[node, ready_cores, cores, out], ...]`` for the nodes whose readiness
    changed (all of them in the greeting), at ``time`` on the agent's clock. ``ready_cores``: cores whose workers
    said hello and serve now; ``cores``: the cores the node's workers own when all serve; ``out``: why the node is
    out of the schedule (it never joined within ``node_join_timeout``, its workers kept dying), else ``""``. Sent
    when workers join or leave (batched per master loop pass), never per heartbeat."""

    tag: ClassVar[str] = "nodes_ready"
    time: float
    nodes: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class SubmitTasks(Message):
    tag: ClassVar[str] = "submit"
    tasks: list[Any]  # task mappings


@declare
@dataclasses.dataclass(slots=True)
class RunTasks(Message):
    tag: ClassVar[str] = "run"
    tasks: list[Any]  # task mappings, with "gpu_ids" set by the master and "sandbox" by the node manager


@declare
@dataclasses.dataclass(slots=True)
class NodeTasks(Message):
    """The master gives a node manager its workers' new tasks: ``[[worker_uid, [task, ...]], ...]``; the manager
    sends each worker its own as a RunTasks, each task's ``sandbox`` set to ``TASK_ROOT/UID`` (the master holds a
    window of hundreds of thousands of tasks: not one path string each)."""

    tag: ClassVar[str] = "node_tasks"
    task_root: str
    assignments: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class CancelTasks(Message):
    tag: ClassVar[str] = "cancel"
    uids: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class TaskUpdates(Message):
    tag: ClassVar[str] = "updates"
    updates: list[Any]  # task updates, in the order they happened


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
    uids: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class WorkerHello(Message):
    tag: ClassVar[str] = "worker_hello"
    worker_uid: str
    node: str
    host: str
    pid: int


@declare
@dataclasses.dataclass(slots=True)
class NodeHello(Message):
    """A node manager introduces itself and the workers it forked that are ready: ``[[worker_uid, pid], ...]``.
    Sent first as soon as it is connected (with the workers ready by then, maybe none: so that the master knows it,
    and hears of workers that end before they are ready), and again (with only the new ones) as more are ready."""

    tag: ClassVar[str] = "node_hello"
    node: str
    host: str
    pid: int
    workers: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class WorkersExited(Message):
    """Workers of a node manager whose process ended, or that it killed (silent): ``[[worker_uid, exit_code,
    why], ...]`` — ``exit_code`` as Python's ``Popen.returncode`` gives it (negative: the signal's number), ``why``
    empty unless the manager ended it."""

    tag: ClassVar[str] = "workers_exited"
    workers: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class StartWorkers(Message):
    """The master asks a node manager to fork workers with these uids (replacements for workers lost)."""

    tag: ClassVar[str] = "start_workers"
    uids: list[Any]


@declare
@dataclasses.dataclass(slots=True)
class GiveBack(Message):
    """A worker whose current task runs long gives back the tasks queued behind it, not started (they will not
    be): the master runs them on other workers."""

    tag: ClassVar[str] = "give_back"
    uids: list[Any]


def encode(message: Message) -> bytes:
    """Serialize a message to its wire form."""
    fields = _FIELD_TYPES[message.tag]
    packed: bytes = msgpack.packb(
        [PROTOCOL_VERSION, message.tag, *[getattr(message, name) for name, _ in fields]], use_bin_type=True
    )
    return packed


def decode(data: bytes, *, relay: bool = False) -> Message:
    """Parse and validate one wire message; raises :class:`ProtocolError` on anything malformed.

    ``relay``: the reader passes the message's tasks on to a process that checks each of them when it decodes them
    (a node manager, whose workers decode each ``RunTasks``): a :class:`NodeTasks` is checked as far as the relay
    reads it — each assignment a worker uid and a list of mappings with a valid ``uid`` — not task by task twice."""
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
        raise ProtocolVersionError(
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
    if tag in _CONTENTS:
        position, check = _RELAYED[tag] if relay and tag in _RELAYED else _CONTENTS[tag]
        check(tag, values[position])
    return cls(*values)


# -- what the list fields contain ---------------------------------------------------------------------------
def _is(value: object, expected: type | tuple[type, ...]) -> bool:
    return isinstance(value, expected) and (value.__class__ is not bool or _accepts_bool(expected))


def _accepts_bool(expected: type | tuple[type, ...]) -> bool:
    return bool in (expected if isinstance(expected, tuple) else (expected,))


_VALID_SHAPES: dict[int, set[tuple[tuple[Any, ...], tuple[type, ...]]]] = {}
"""Per key→type table, the shapes (keys and the exact classes of their values, in order) found valid: most
mappings of a run share a few shapes, and checking a known one is two tuple builds and a set lookup in C."""
_MAX_SHAPES = 4096


def _check_mappings(tag: str, items: list[Any], types: dict[str, type | tuple[type, ...]],
                    required: tuple[str, ...]) -> None:
    """Each item a mapping of known keys with values of their types, with the ``required`` keys, and a valid uid."""
    shapes = _VALID_SHAPES.setdefault(id(types), set())
    for index, item in enumerate(items):
        if item.__class__ is not dict:
            raise ProtocolError(f"message {tag!r} item {index} is a {type(item).__name__}, not a mapping")
        shape = (tuple(item), tuple(map(type, item.values())))
        if shape not in shapes:
            _check_mapping(f"message {tag!r} item {index}", item, types, required)
            if len(shapes) < _MAX_SHAPES:
                shapes.add(shape)
        uid = item["uid"]
        if not _UID.fullmatch(uid):
            raise ProtocolError(f"message {tag!r} item {index} has an invalid uid {uid[:40]!r}")


def _check_mapping(where: str, item: dict[Any, Any], types: dict[str, type | tuple[type, ...]],
                   required: tuple[str, ...]) -> None:
    for key, value in item.items():
        expected = types.get(key) if key.__class__ is str else None
        if expected is None:
            raise ProtocolError(f"{where} has an unknown key {str(key)[:40]!r}")
        if not _is(value, expected):
            raise ProtocolError(f"{where} key {key!r} has type {type(value).__name__}")
    missing = [key for key in required if key not in item]
    if missing:
        raise ProtocolError(f"{where} lacks {', '.join(missing)}")


def _relative_inside(path: str) -> bool:
    """A relative path that stays inside the directory it is relative to."""
    if "/" not in path and path != ".." and "\0" not in path:  # a plain file name (the usual case, fast)
        return True
    normal = posixpath.normpath(path)
    return "\0" not in path and not posixpath.isabs(path) and normal != ".." and not normal.startswith("../")


def _check_tasks(tag: str, tasks: list[Any]) -> None:
    _check_mappings(tag, tasks, TASK_TYPES, _TASK_REQUIRED)
    for index, task in enumerate(tasks):
        for key in ("stdin", "stdout", "stderr"):
            if isinstance(task.get(key), str) and not _relative_inside(task[key]):
                raise ProtocolError(f"message {tag!r} item {index} {key} {task[key][:80]!r} leaves the task sandbox")
        if "wrapper" in task and not all(isinstance(item, str) for item in task["wrapper"]):
            raise ProtocolError(f"message {tag!r} item {index} has a wrapper that is not a list of strings")


def _check_updates(tag: str, updates: list[Any]) -> None:
    _check_mappings(tag, updates, UPDATE_TYPES, _UPDATE_REQUIRED)
    for index, update in enumerate(updates):
        if "return_value_file" in update:
            reference = update["return_value_file"]
            where = f"message {tag!r} item {index} return_value_file"
            _check_mapping(where, reference, RESULT_FILE_TYPES, _RESULT_FILE_REQUIRED)
            if "/" in reference["name"] or reference["name"] in ("", ".", "..") or "\0" in reference["name"]:
                raise ProtocolError(f"{where} name {reference['name'][:80]!r} is not a file name in the task sandbox")


def _check_strings(tag: str, items: list[Any]) -> None:
    if not all(isinstance(item, str) for item in items):
        raise ProtocolError(f"message {tag!r} lists something other than strings")


def _check_nodes(tag: str, nodes: list[Any]) -> None:
    for node in nodes:
        if not (isinstance(node, list) and len(node) == 3 and isinstance(node[0], str)
                and all(_is(number, int) for number in node[1:])):
            raise ProtocolError(f"message {tag!r}: a node is not [name, cores, gpus]: {str(node)[:80]!r}")


def _check_readiness(tag: str, nodes: list[Any]) -> None:
    for node in nodes:
        if not (isinstance(node, list) and len(node) == 4 and isinstance(node[0], str) and _is(node[1], int)
                and _is(node[2], int) and isinstance(node[3], str)):
            raise ProtocolError(f"message {tag!r}: a node is not [name, ready_cores, cores, out]: {str(node)[:80]!r}")


def _check_node_workers(tag: str, workers: list[Any]) -> None:
    for worker in workers:
        if not (isinstance(worker, list) and len(worker) == 2 and isinstance(worker[0], str) and _is(worker[1], int)):
            raise ProtocolError(f"message {tag!r}: a worker is not [uid, pid]: {str(worker)[:80]!r}")


def _check_exits(tag: str, workers: list[Any]) -> None:
    for worker in workers:
        if not (isinstance(worker, list) and len(worker) == 3 and isinstance(worker[0], str) and _is(worker[1], int)
                and isinstance(worker[2], str)):
            raise ProtocolError(f"message {tag!r}: an exit is not [uid, exit_code, why]: {str(worker)[:80]!r}")


def _check_assignments(tag: str, assignments: list[Any]) -> None:
    for assignment in assignments:
        if not (isinstance(assignment, list) and len(assignment) == 2 and isinstance(assignment[0], str)
                and isinstance(assignment[1], list)):
            raise ProtocolError(f"message {tag!r}: an assignment is not [worker_uid, tasks]: {str(assignment)[:80]!r}")
        _check_tasks(tag, assignment[1])


def _check_relayed_assignments(tag: str, assignments: list[Any]) -> None:
    """What a relay of a NodeTasks reads: worker uids, and tasks that are mappings with a valid uid."""
    for assignment in assignments:
        if not (isinstance(assignment, list) and len(assignment) == 2 and isinstance(assignment[0], str)
                and isinstance(assignment[1], list)):
            raise ProtocolError(f"message {tag!r}: an assignment is not [worker_uid, tasks]: {str(assignment)[:80]!r}")
        for task in assignment[1]:
            if not (isinstance(task, dict) and isinstance(task.get("uid"), str) and _UID.fullmatch(task["uid"])):
                raise ProtocolError(f"message {tag!r}: a task without a valid uid: {str(task)[:80]!r}")


def _check_events(tag: str, events: list[Any]) -> None:
    if not all(isinstance(event, list) for event in events):
        raise ProtocolError(f"message {tag!r}: an event is not a list")


def _check_agent_events(tag: str, events: list[Any]) -> None:
    for event in events:
        if not (isinstance(event, list) and len(event) == 6 and _is(event[0], _NUMBER)
                and all(isinstance(text, str) for text in event[1:])):
            raise ProtocolError(f"message {tag!r}: an event is not [time, component, where, event, uid, detail]: "
                                f"{str(event)[:80]!r}")


_CONTENTS: dict[str, tuple[int, Callable[[str, Any], None]]] = {
    "submit": (0, _check_tasks), "run": (0, _check_tasks), "node_tasks": (1, _check_assignments),
    "updates": (0, _check_updates),
    "cancel": (0, _check_strings), "ack": (0, _check_strings), "give_back": (0, _check_strings),
    "bootstrap_events": (0, _check_events), "start_workers": (0, _check_strings),
    "node_hello": (3, _check_node_workers), "workers_exited": (0, _check_exits),
    "hello": (3, _check_nodes), "agent_events": (0, _check_agent_events), "nodes_ready": (1, _check_readiness),
}
"""What the list fields of a message contain: by tag, the field's position and its check."""
_RELAYED: dict[str, tuple[int, Callable[[str, Any], None]]] = {"node_tasks": (1, _check_relayed_assignments)}
"""The checks of :func:`decode` with ``relay=True``, where they differ."""


class DropLog:
    """Log dropped messages without letting a flood of them fill the disk: the first 10 from each peer, then
    every 1000th with a count."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.counts: dict[str, int] = {}

    def dropped(self, peer: str, error: object) -> None:
        count = self.counts[peer] = self.counts.get(peer, 0) + 1
        if count <= 10 or count % 1000 == 0:
            self.log.error("dropped a message from %s (%d so far): %s", peer, count, error)
