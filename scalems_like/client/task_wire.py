"""What a :class:`TaskDescription` becomes on the wire (a task of ``SubmitTasks``, and the journal's row of it).

Keys with their default value stay off the wire; staging directives are rewritten for the shared filesystem;
a function task's code and arguments are cloudpickle bytes. Functions from the user's own modules (scripts, test
files) are pickled by value, since a worker cannot import them; those of installed packages by reference.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

from scalems_like.descriptions import TaskDescription
from scalems_like.staging.directives import for_shared_filesystem


def to_wire(description: TaskDescription, client_root: Path, pickled: dict[Any, bytes]) -> dict[str, Any]:
    """The task's mapping (without its ``uid``); ``pickled``: the session's cache of pickled functions."""
    wire: dict[str, Any] = {
        "name": description.name, "kind": description.kind,
        "environment": dict(description.environment),
        "working_directory": description.working_directory, "cores": description.cores, "gpus": description.gpus,
        "ranks": description.ranks, "stdin": description.stdin, "stdout": description.stdout,
        "stderr": description.stderr, "timeout": description.timeout, "retries": description.retries,
        "idempotent": description.idempotent,
        "tags": dict(description.tags),
    }
    if not description.inherit_environment:  # (keys with their default value stay off the wire)
        wire["inherit_environment"] = False
    if description.wrapper:
        wire["wrapper"] = list(description.wrapper)
    for field in ("input_staging", "output_staging"):
        directives = getattr(description, field)
        if directives:
            wire[field] = [for_shared_filesystem(d, client_root).to_wire() for d in directives]
    if description.function is not None:
        wire["function"] = pickle_function(description.function, pickled)
        wire["call_arguments"] = cloudpickle.dumps((tuple(description.args), dict(description.kwargs)))
    else:
        wire["executable"] = description.executable
        wire["arguments"] = list(description.arguments)
    return wire


def pickle_function(function: Callable[..., Any], pickled: dict[Any, bytes]) -> bytes:
    """``function`` pickled, once per function (``pickled`` keeps them; an unhashable callable every time)."""
    try:
        cached = pickled.get(function)
    except TypeError:  # unhashable callable
        return cloudpickle.dumps(function)
    if cached is None:
        pickle_by_value_if_local(function)
        cached = pickled[function] = cloudpickle.dumps(function)
    return cached


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
