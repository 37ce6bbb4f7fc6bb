"""What a :class:`TaskDescription` becomes on the wire (a task of ``SubmitTasks``, and the journal's row of it).

Keys with their default value stay off the wire; staging directives are rewritten for the shared filesystem;
a function task's code and arguments are cloudpickle bytes (:mod:`scalems_like.protocol.code_pickle`: tracebacks
keep the user's file names and source lines). Functions from the user's own modules (scripts, test
files) are pickled by value, since a worker cannot import them; those of installed packages by reference.
"""

from __future__ import annotations

import functools
import inspect
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

from scalems_like.descriptions import TaskDescription
from scalems_like.errors import ConfigError
from scalems_like.protocol import code_pickle
from scalems_like.protocol.tasks import DescribedTask
from scalems_like.staging.directives import Directive, for_shared_filesystem


def to_wire(description: TaskDescription, client_root: Path, pickled: dict[Any, bytes],
            outbound: Callable[[Directive], Directive] | None = None) -> DescribedTask:
    """The task's mapping (without its ``uid``); ``pickled``: the session's cache of pickled functions;
    ``outbound``: how a directive reaches the resource (default: client:// as a path of a shared file system)."""
    if outbound is None:
        outbound = functools.partial(for_shared_filesystem, client_root=client_root)
    wire: DescribedTask = {
        "kind": description.kind, "cores": description.cores, "gpus": description.gpus, "ranks": description.ranks,
        "stdout": description.stdout, "stderr": description.stderr,
    }
    # keys with their default value stay off the wire: an agent at 4 096 nodes holds half a million tasks, and
    # their empty keys were 40 % of each (readers take them with .get and the default)
    if description.name is not None:
        wire["name"] = description.name
    if description.environment:
        wire["environment"] = dict(description.environment)
    if description.working_directory is not None:
        wire["working_directory"] = description.working_directory
    if description.stdin is not None:
        wire["stdin"] = description.stdin
    if description.timeout is not None:
        wire["timeout"] = description.timeout
    if description.retries:
        wire["retries"] = description.retries
    if description.idempotent:
        wire["idempotent"] = True
    if description.tags:
        wire["tags"] = dict(description.tags)
    if not description.inherit_environment:
        wire["inherit_environment"] = False
    if description.wrapper:
        wire["wrapper"] = list(description.wrapper)
    for field in ("input_staging", "output_staging"):
        directives = getattr(description, field)
        if directives:
            wire[field] = [outbound(d).to_wire() for d in directives]
    if description.function is not None:
        wire["function"] = pickle_function(description.function, pickled)
        wire["call_arguments"] = pickle_arguments(description)
    else:
        assert description.executable is not None  # (a TaskDescription has a function or an executable)
        wire["executable"] = description.executable
        wire["arguments"] = list(description.arguments)
    return wire


def to_wire_all(descriptions: list[TaskDescription], client_root: Path, pickled: dict[Any, bytes],
                outbound: Callable[[int, Directive], Directive] | None = None) -> list[DescribedTask]:
    """Every description's mapping, or one ConfigError naming each item that cannot be sent (the first five)
    and saying that nothing of the batch was submitted."""
    encoded: list[DescribedTask] = []
    problems: list[str] = []
    for index, description in enumerate(descriptions):
        try:
            encoded.append(to_wire(description, client_root, pickled,
                                   None if outbound is None else functools.partial(outbound, index)))
        except ConfigError as error:
            name = f" ({description.name!r})" if description.name else ""
            problems.append(f"item {index}{name}: {error}")
    if problems:
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ConfigError("submit_tasks: nothing of this batch was submitted; fix or leave out:\n  "
                          + "\n  ".join(problems[:5]) + more)
    return encoded


FUNCTIONS_KEPT = 256
"""Functions whose pickle a session keeps at most: a workflow that makes a function per task (a closure, a
``functools.partial``) would otherwise hold every one of them, and its pickle, for the session's life."""


def pickle_function(function: Callable[..., Any], pickled: dict[Any, bytes]) -> bytes:
    """``function`` pickled, once per function (``pickled`` keeps them, up to :data:`FUNCTIONS_KEPT`, then starts
    again; an unhashable callable every time).

    Raises ConfigError naming what the function holds that cannot be pickled (a lock, an open file, ...).
    """
    try:
        cached = pickled.get(function)
    except TypeError:  # unhashable callable
        return _pickle_function(function)
    if cached is None:
        pickle_by_value_if_local(function)
        cached = _pickle_function(function)
        if len(pickled) >= FUNCTIONS_KEPT:
            pickled.clear()  # (one step, safe under concurrent submitters; a function seen again is pickled again)
        pickled[function] = cached
    return cached


def _pickle_function(function: Callable[..., Any]) -> bytes:
    try:
        return code_pickle.dumps(function)
    except Exception as error:
        raise ConfigError(f"TaskDescription.function = {function!r}: cannot be sent to a worker: "
                          f"{_unpicklable_part(function) or _cause(error)}") from error


def pickle_arguments(description: TaskDescription) -> bytes:
    """The call's ``(args, kwargs)`` pickled; ConfigError naming the argument that cannot be."""
    try:
        return code_pickle.dumps((tuple(description.args), dict(description.kwargs)))
    except Exception as error:
        named = [(f"args[{i}]", value) for i, value in enumerate(description.args)]
        named += [(f"kwargs[{key!r}]", value) for key, value in description.kwargs.items()]
        for field, value in named:
            why = _pickle_error(value)
            if why is not None:
                raise ConfigError(f"TaskDescription.{field} = {_short(value)}: cannot be sent to a worker: "
                                  f"{why}") from error
        raise ConfigError(f"TaskDescription.args/kwargs: cannot be sent to a worker: {_cause(error)}") from error


def _unpicklable_part(function: Callable[..., Any]) -> str | None:
    """Which variable the function uses (closure or global) cannot be pickled, in words; None if not found."""
    try:
        variables = inspect.getclosurevars(function)
    except (TypeError, ValueError):
        return None
    for kind, names in (("closure variable", variables.nonlocals), ("global", variables.globals)):
        for name, value in names.items():
            why = _pickle_error(value)
            if why is not None:
                return f"it uses the {kind} {name!r} = {_short(value)}, and {why}"
    return None


def _pickle_error(value: Any) -> str | None:
    try:
        code_pickle.dumps(value)
    except Exception as error:
        return _cause(error)
    return None


def _cause(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def pickle_by_value_if_local(function: Callable[..., Any]) -> None:
    """Send the code of functions from the user's own modules (scripts, test files), not a reference to them.

    cloudpickle pickles functions of importable modules by reference; a worker can import installed
    packages, but not a module that lives only in the user's working directory.
    """
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None or module.__name__ == "__main__":
        return
    if not str(Path(path).resolve()).startswith(_installed_roots()):
        cloudpickle.register_pickle_by_value(module)


def _installed_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(sorted(str(Path(root).resolve()) for root in roots))
