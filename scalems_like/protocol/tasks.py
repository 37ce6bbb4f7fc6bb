"""The task records of the wire, declared once: a task mapping (in SubmitTasks and RunTasks), a task update (in
TaskUpdates, the agent's journal and the client's), and :func:`task_update`, the one way to build an update.

The TypedDicts are the declaration: :mod:`scalems_like.protocol.messages` derives from them the key → type tables
its :func:`~scalems_like.protocol.messages.decode` checks (:func:`runtime_types`), so a key added here is accepted
on the wire and a key not declared here is refused.
"""

from __future__ import annotations

import types
import typing
from typing import TYPE_CHECKING, Any, TypedDict, cast

from scalems_like.states import TASK_FINAL, TaskState

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ResultFile(TypedDict):
    """The ``return_value_file`` of an update: a return value kept in the task sandbox."""

    name: str
    """The file's name in the task sandbox."""
    bytes: int
    sha256: str
    """Its SHA-256, hex."""


class _TaskKind(TypedDict):
    kind: str
    """``"executable"`` or ``"function"``."""


class DescribedTask(_TaskKind, total=False):
    """A task mapping as the client makes it from a TaskDescription (:mod:`scalems_like.client.task_wire`), before
    the session gives it its uid: ``kind`` and the keys whose value is not the default."""

    name: str | None
    executable: str
    arguments: list[str]
    function: bytes
    """The function, cloudpickled (:mod:`scalems_like.protocol.code_pickle`)."""
    call_arguments: bytes
    """``(args, kwargs)``, cloudpickled."""
    environment: dict[str, str]
    working_directory: str | None
    sandbox: str
    """Set by the master: the task sandbox."""
    cores: int
    gpus: int
    ranks: int
    stdin: str | None
    stdout: str
    stderr: str
    timeout: float | None
    retries: int
    idempotent: bool
    tags: dict[str, str]
    gpu_ids: list[int]
    """Set by the master: the GPUs the task was given."""
    attempt: int
    placement: list[list[Any]]
    """Set by the master for ``ranks`` > 1: ``[[node, ranks], ...]``."""
    input_staging: list[dict[str, Any]]
    output_staging: list[dict[str, Any]]
    inherit_environment: bool
    wrapper: list[str]
    results_in_sandbox_above: int
    """Set by the master on function tasks (the resource config's key of that name)."""


class _TaskUid(TypedDict):
    uid: str
    """Names the task sandbox: no separators, no leading dot."""


class TaskMapping(_TaskUid, DescribedTask):
    """A task on the wire (in SubmitTasks and RunTasks): its ``uid``, ``kind`` and the keys whose value is not the
    default; ``sandbox``, ``gpu_ids``, ``placement`` and ``results_in_sandbox_above`` are set by the master."""


class _UpdateKeys(TypedDict):
    uid: str
    state: str
    """A :class:`~scalems_like.states.TaskState`'s value (a plain string once decoded)."""
    time: float
    """When it happened, on the clock of ``host``."""


class _UpdateSource(TypedDict, total=False):
    host: str | None
    """Where it happened: a node, or ``"client"`` for a state decided by the client."""


class UpdateFields(TypedDict, total=False):
    """The keys of a task update besides ``uid``, ``state``, ``time`` and ``host``."""

    attempt: int
    """The task's attempt (0 first; a retry counts one up); left out, the task's attempt does not change."""
    worker: str
    exit_code: int | None
    reason: str | None
    return_value: bytes
    """A DONE function task's value, cloudpickled (unless it is in ``return_value_file``)."""
    exception: bytes
    traceback: str
    output: str
    started: float
    pid: int
    interrupted: str
    """``"queued"`` or ``"running"``: the task FAILED because its pilot ended (``Session.resume`` runs it again)."""
    return_value_file: ResultFile


class TaskUpdate(_UpdateKeys, _UpdateSource, UpdateFields):
    """A task's change of state, as it travels in TaskUpdates and is kept in the agent's journal."""


class ClientFields(TypedDict, total=False):
    """Keys only the client's own updates carry (kept in the session's journal, never sent)."""

    pilot: str | None
    """Where the task was sent (SUBMITTED), or None (sent back to NEW)."""
    sandbox: str | None
    requeue: bool
    """The update sends the task back to NEW, to run on another pilot (``Session.resume``)."""


class JournaledUpdate(TaskUpdate, ClientFields):
    """An update as the client applies and journals it: an agent's, or one decided on the client."""


class _Fields(UpdateFields, ClientFields, total=False):
    pass


CLIENT_HOST = "client"
"""The ``host`` of an update decided on the client."""


def task_update(uid: str, state: TaskState, time: float, host: str | None,
                **fields: Unpack[_Fields]) -> JournaledUpdate:
    """A task update: ``state`` is the enum (its value goes on the wire); ``fields`` are the keys of
    :class:`UpdateFields` (``attempt``, ``reason``, ...), or, for an update decided on the client, of
    :class:`ClientFields` too (:func:`~scalems_like.protocol.messages.decode` refuses those on the wire)."""
    if not isinstance(state, TaskState):
        raise TypeError(f"task_update({uid!r}): state {state!r} is not a TaskState")
    update = {"uid": uid, "state": state.value, "time": time, "host": host, **fields}  # (a literal: the fastest)
    return cast(JournaledUpdate, update)


_FINAL_VALUES = frozenset(state.value for state in TASK_FINAL)


def is_final(update: TaskUpdate | JournaledUpdate) -> bool:
    """True when the update ends its task (its state is one of :data:`~scalems_like.states.TASK_FINAL`)."""
    return update["state"] in _FINAL_VALUES


_NUMBER = (int, float)


def runtime_types(record: type) -> dict[str, type | tuple[type, ...]]:
    """A TypedDict's keys and what ``isinstance`` accepts for each: ``float`` takes an ``int`` too, ``X | None``
    takes None, a generic takes its origin (``list[str]`` → ``list``), a TypedDict a ``dict``."""
    return {key: _accepted(annotation) for key, annotation in typing.get_type_hints(record).items()}


def _accepted(annotation: Any) -> type | tuple[type, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        accepted: list[type] = []
        for member in typing.get_args(annotation):
            single = _accepted(member)
            accepted.extend(single if isinstance(single, tuple) else (single,))
        return tuple(accepted)
    if annotation is float:
        return _NUMBER
    if annotation is type(None):
        return type(None)
    if typing.is_typeddict(annotation):
        return dict
    origin = typing.get_origin(annotation)
    if isinstance(origin, type):
        return origin
    if isinstance(annotation, type) and annotation is not Any:
        return annotation
    raise TypeError(f"no runtime check for the annotation {annotation!r}")


def required_keys(record: Any) -> tuple[str, ...]:
    """A TypedDict's required keys, in declaration order."""
    return tuple(key for key in typing.get_type_hints(record) if key in record.__required_keys__)
