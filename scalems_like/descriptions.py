"""What a user asks for: :class:`PilotDescription` and :class:`TaskDescription`.

Both are validated when constructed; a bad value raises :class:`~scalems_like.errors.ConfigError` naming the
field and the value, before anything is submitted; so does an unknown field (with the field it probably means).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from scalems_like.errors import ConfigError


def _fail(owner: str, field: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"{owner}.{field} = {value!r}: expected {expected}")


def _check_int(owner: str, field: str, value: object, minimum: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(owner, field, value, f"an integer >= {minimum}" + (" or None" if optional else ""))


def _check_seconds(owner: str, field: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise _fail(owner, field, value, "a number of seconds > 0" + (" or None" if optional else ""))


def _check_str(owner: str, field: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise _fail(owner, field, value, "a non-empty string" + (" or None" if optional else ""))


def _is_list_of_str(value: object) -> bool:
    if value.__class__ is not tuple and value.__class__ is not list and (  # (fast path: no ABC check)
            not isinstance(value, Sequence) or isinstance(value, (str, bytes))):
        return False
    return all(isinstance(item, str) for item in value)  # type: ignore[attr-defined]


def _arguments(owner: str, value: object) -> tuple[str, ...]:
    """An executable's arguments as strings: numbers and paths are converted (as RP and Parsl do)."""
    if _is_list_of_str(value):
        return tuple(cast("Sequence[str]", value))  # (the usual case, fast)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(owner, "arguments", value, "a list of strings")
    converted = []
    for index, item in enumerate(value):
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        elif isinstance(item, os.PathLike) and isinstance(os.fspath(item), str):
            item = os.fspath(item)
        if not isinstance(item, str):
            raise ConfigError(f"{owner}.arguments = {value!r}: item {index} = {item!r}: expected a string "
                              "(numbers and paths are converted)")
        converted.append(item)
    return tuple(converted)


def _environment(owner: str, value: object) -> Mapping[str, str]:
    """Environment variables as strings: numbers and paths are converted (as in ``arguments``); a key that is not a
    string, or a value that is neither, is refused naming it."""
    if value.__class__ is dict and not value:  # the default (fast path)
        return cast("Mapping[str, str]", value)
    if not isinstance(value, Mapping):
        raise _fail(owner, "environment", value, "a mapping of strings to strings")
    if all(isinstance(key, str) and key and "=" not in key and isinstance(item, str) for key, item in value.items()):
        return value
    converted = {}
    for key, item in value.items():
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        elif isinstance(item, os.PathLike) and isinstance(os.fspath(item), str):
            item = os.fspath(item)
        if not isinstance(key, str) or not key or "=" in key or not isinstance(item, str):
            raise ConfigError(f"{owner}.environment[{key!r}] = {item!r}: expected a variable name (a string "
                              "without '=') and a string value (numbers and paths are converted)")
        converted[key] = item
    return converted


def _check_inside_sandbox(owner: str, field: str, value: str | None) -> None:
    """A file name relative to the task sandbox that stays inside it (data elsewhere moves by staging)."""
    if value is None or ("/" not in value and value not in (".", "..") and "\0" not in value):
        return  # a plain file name (the usual case, fast)
    normal = posixpath.normpath(value)
    if "\0" in value or posixpath.isabs(value) or normal == ".." or normal.startswith("../"):
        raise _fail(owner, field, value, "a path relative to the task sandbox, inside it (no leading / or ..; "
                    "stage files in or out with input_staging/output_staging)")


def _check_str_mapping(owner: str, field: str, value: object) -> None:
    if value.__class__ is dict and not value:  # the default (fast path)
        return
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise _fail(owner, field, value, "a mapping of strings to strings")


_ALIASES = {
    "TaskDescription": {
        "cpus": "cores", "cpu": "cores", "threads": "cores", "cpu_threads": "cores", "cores_per_rank": "cores",
        "processes": "ranks", "cpu_processes": "ranks", "nprocs": "ranks", "ntasks": "ranks", "mpi_ranks": "ranks",
        "gpu": "gpus", "gpus_per_rank": "gpus", "env": "environment", "environ": "environment",
        "cwd": "working_directory", "workdir": "working_directory", "work_dir": "working_directory",
        "walltime": "timeout", "runtime": "timeout", "command": "executable", "cmd": "executable",
        "exe": "executable", "func": "function", "retry": "retries", "max_retries": "retries",
        "stage_in": "input_staging", "stage_out": "output_staging",
    },
    "PilotDescription": {
        "cpus": "cores", "cpu": "cores", "threads": "cores", "gpu": "gpus", "node": "nodes", "num_nodes": "nodes",
        "nodes_per_block": "nodes", "walltime": "runtime", "time": "runtime", "timeout": "runtime",
        "partition": "queue", "allocation": "account", "env": "environment", "worker_init": "pre_bootstrap",
        "stage_in": "input_staging", "stage_out": "output_staging",
    },
}
"""Names that users of RP, Parsl and batch systems reach for, and the field each means here."""


def _unknown_fields(owner: str, names: Sequence[str], fields: Sequence[str]) -> str:
    """The sentence for unknown ``names``: each with the field it probably means, or the list of fields."""
    def suggestion(name: str) -> str | None:
        if name in _ALIASES[owner] or name.lower() in fields:
            return _ALIASES[owner].get(name, name.lower())
        close = difflib.get_close_matches(name.lower(), fields, n=1, cutoff=0.75)
        return close[0] if close else None
    said = [(name, suggestion(name)) for name in names]
    if len(said) == 1:
        name, field = said[0]
        hint = f": did you mean {field!r}?" if field else f"; its fields: {', '.join(fields)}"
        return f"{owner} got an unexpected field {name!r}{hint}"
    listed = ", ".join(f"{name!r}" + (f" (did you mean {field!r}?)" if field else "") for name, field in said)
    return f"{owner} got unexpected fields {listed}; its fields: {', '.join(fields)}"


_Description = TypeVar("_Description")


def _fields_by_name(cls: type[_Description]) -> type[_Description]:
    """Make the bare TypeError of the generated ``__init__`` for an unknown or positional argument a ConfigError
    that says what to write (only when it is raised: a valid description costs one call more)."""
    generated = cls.__init__
    fields = tuple(field.name for field in dataclasses.fields(cls))  # type: ignore[arg-type]

    @functools.wraps(generated)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            generated(self, *args, **kwargs)
        except TypeError:
            unknown = [name for name in kwargs if name not in fields]
            if unknown:
                raise ConfigError(_unknown_fields(cls.__name__, unknown, fields)) from None
            if args:
                raise ConfigError(f"{cls.__name__} takes fields by name: {cls.__name__}({fields[0]}={args[0]!r}, "
                                  "...)") from None
            raise
    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def _parse_staging(description: object, owner: str) -> None:
    from scalems_like.staging.directives import parse_all

    for field, output in (("input_staging", False), ("output_staging", True)):
        value = getattr(description, field)
        if value == ():  # the default: nothing to parse (fast path)
            continue
        parsed = parse_all(value, output=output, where=f"{owner}.{field}",
                           sandbox="pilot" if owner == "PilotDescription" else "task")
        object.__setattr__(description, field, parsed)


@_fields_by_name
@dataclasses.dataclass(frozen=True, kw_only=True)
class PilotDescription:
    """A request for a pilot: an allocation on ``resource`` in which an agent runs tasks.

    ``cores`` is the total for a one-node pilot (``None``: what the resource config or node offers); for
    multi-node pilots use ``nodes`` (cores per node then come from the resource config). ``runtime`` is the
    walltime in seconds. ``environment`` is a profile name or an environment spec mapping. ``pre_bootstrap``
    lines run in the job's shell before the environment step (``module load ...``, ``export ...``).
    """

    resource: str = "local"
    cores: int | None = None
    gpus: int = 0
    nodes: int = 1
    runtime: float = 600
    queue: str | None = None
    account: str | None = None
    project: str | None = None
    environment: str | Mapping[str, Any] | None = None
    pre_bootstrap: Sequence[str] = ()
    input_staging: Sequence[Any] = ()
    """Directives run by the client when the pilot is submitted (shared data into ``pilot://`` once)."""
    output_staging: Sequence[Any] = ()
    """Directives run by the client when the pilot has ended (``when``: success = DONE, failure = FAILED)."""

    def __post_init__(self) -> None:
        owner = "PilotDescription"
        _parse_staging(self, owner)
        _check_str(owner, "resource", self.resource, optional=False)
        _check_int(owner, "cores", self.cores, 1, optional=True)
        _check_int(owner, "gpus", self.gpus, 0)
        _check_int(owner, "nodes", self.nodes, 1)
        _check_seconds(owner, "runtime", self.runtime, optional=False)
        for field in ("queue", "account", "project"):
            _check_str(owner, field, getattr(self, field))
        if self.environment is not None and not isinstance(self.environment, (str, Mapping)):
            raise _fail(owner, "environment", self.environment, "a profile name, a mapping or None")
        if not _is_list_of_str(self.pre_bootstrap):
            raise _fail(owner, "pre_bootstrap", self.pre_bootstrap, "a list of shell lines")
        object.__setattr__(self, "pre_bootstrap", tuple(self.pre_bootstrap))


@_fields_by_name
@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskDescription:
    """One unit of work: an ``executable`` with ``arguments``, or a Python ``function`` with ``args``/``kwargs``.

    Executables run as subprocesses in the task sandbox (or ``working_directory``), with ``stdout``/``stderr``
    written to files there (names relative to the sandbox) and ``stdin`` read from a file. Functions run inside
    a worker process. ``cores``/``gpus`` are per rank; ``ranks`` > 1 launches the executable with the resource's
    MPI launcher. ``timeout`` (seconds) kills the task; ``retries`` re-runs a failed task that many times.
    ``idempotent`` tasks may run again from the start when their pilot died while they ran (``Session.resume``).
    ``inherit_environment=False`` starts an executable with ``environment`` only (not the pilot's variables).
    ``wrapper`` is an argv run once around the whole launch, ``[*wrapper, *mpi_launcher_prefix, executable,
    *arguments]``: a script that sets up, redirects and runs ``"$@"`` (the psij executor's launch script).
    """

    executable: str | None = None
    arguments: Sequence[str] = ()
    function: Callable[..., Any] | None = None
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str | None = None
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    working_directory: str | None = None
    cores: int = 1
    gpus: int = 0
    ranks: int = 1
    stdin: str | None = None
    stdout: str = "stdout"
    stderr: str = "stderr"
    timeout: float | None = None
    retries: int = 0
    idempotent: bool = False
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    inherit_environment: bool = True
    wrapper: Sequence[str] = ()
    input_staging: Sequence[Any] = ()
    """Directives run before the task starts (see :mod:`scalems_like.staging.directives`)."""
    output_staging: Sequence[Any] = ()
    """Directives run after the task ends, before it is DONE (``when``: success, failure, always)."""

    def __post_init__(self) -> None:
        owner = "TaskDescription"
        _parse_staging(self, owner)
        if (self.executable is None) == (self.function is None):
            raise ConfigError(
                f"{owner}: give exactly one of executable= or function= "
                f"(executable={self.executable!r}, function={self.function!r})"
            )
        if self.executable is not None:
            _check_str(owner, "executable", self.executable, optional=False)
        if self.function is not None and not callable(self.function):
            raise _fail(owner, "function", self.function, "a callable")
        object.__setattr__(self, "arguments", _arguments(owner, self.arguments))
        if self.function is None and (self.args or self.kwargs):
            raise _fail(owner, "args", self.args, "no args/kwargs for an executable task (use arguments=)")
        if self.function is not None and self.arguments:
            raise _fail(owner, "arguments", self.arguments, "no arguments for a function task (use args=)")
        if self.args.__class__ is not tuple and (isinstance(self.args, str) or not isinstance(self.args, Sequence)):
            raise _fail(owner, "args", self.args, "a sequence of positional arguments")
        if self.kwargs.__class__ is not dict and not isinstance(self.kwargs, Mapping):
            raise _fail(owner, "kwargs", self.kwargs, "a mapping of keyword arguments")
        object.__setattr__(self, "environment", _environment(owner, self.environment))
        _check_str_mapping(owner, "tags", self.tags)
        for field in ("name", "working_directory", "stdin"):
            _check_str(owner, field, getattr(self, field))
        for field in ("stdout", "stderr"):
            _check_str(owner, field, getattr(self, field), optional=False)
        for field in ("stdin", "stdout", "stderr"):
            _check_inside_sandbox(owner, field, getattr(self, field))
        if self.working_directory is not None and not posixpath.isabs(self.working_directory):
            _check_inside_sandbox(owner, "working_directory", self.working_directory)
        _check_int(owner, "cores", self.cores, 1)
        _check_int(owner, "gpus", self.gpus, 0)
        _check_int(owner, "ranks", self.ranks, 1)
        _check_int(owner, "retries", self.retries, 0)
        for field in ("idempotent", "inherit_environment"):
            if not isinstance(getattr(self, field), bool):
                raise _fail(owner, field, getattr(self, field), "True or False")
        if self.wrapper != () and (not _is_list_of_str(self.wrapper) or not self.wrapper
                                   or not self.wrapper[0] or self.function is not None):
            raise _fail(owner, "wrapper", self.wrapper, "a non-empty argv (a list of strings) for an executable task")
        _check_seconds(owner, "timeout", self.timeout, optional=True)
        if self.function is not None and self.ranks > 1:
            raise _fail(owner, "ranks", self.ranks, "1 for a function task (MPI ranks need an executable)")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "wrapper", tuple(self.wrapper))

    @property
    def kind(self) -> str:
        """``"executable"`` or ``"function"``."""
        return "function" if self.function is not None else "executable"
