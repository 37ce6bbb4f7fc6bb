"""One tree of exceptions: every exception class of scalems_like is defined in ``errors.py`` (the few raised
elsewhere by design are named), drawn in its docstring, and the public ones are exported from ``scalems_like``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import scalems_like as sl
from scalems_like import errors

PACKAGE = Path(sl.__file__).parent
ELSEWHERE = {"SessionHeld": "psij_executor/sessions.py", "Terminated": "cli/run.py", "Canceled": "cli/run.py"}
"""Exceptions defined outside errors.py on purpose (see errors.py's docstring)."""
INTERNAL = {"TaskInterrupt", "CancelInterrupt", "ProtocolVersionError", "UsageError"}
"""Classes of errors.py that a user of the library never catches (inside a worker, on the wire, the CLI's exit
code 2): not exported."""


def exception_classes(tree: ast.Module, known: set[str]) -> set[str]:
    """Classes whose base is an exception: a known one, or a name ending in Error/Exception/Interrupt."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {base.id if isinstance(base, ast.Name) else getattr(base, "attr", "") for base in node.bases}
            if bases & known or any(re.search(r"(Error|Exception|Interrupt)$", base) for base in bases):
                found.add(node.name)
    return found


def test_every_exception_class_is_defined_in_errors() -> None:
    defined = {name for name, value in vars(errors).items() if isinstance(value, type)
               and issubclass(value, BaseException) and value.__module__ == errors.__name__}
    outside = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "errors.py":
            for name in exception_classes(ast.parse(path.read_text()), defined):
                outside[name] = str(path.relative_to(PACKAGE))
    assert outside == ELSEWHERE


def test_the_tree_in_the_docstring_names_every_class() -> None:
    drawn = set(re.findall(r"^ {4}[│├└─ ]*([A-Z]\w+)", errors.__doc__ or "", re.MULTILINE))
    defined = {name for name, value in vars(errors).items() if isinstance(value, type)
               and issubclass(value, BaseException) and value.__module__ == errors.__name__}
    assert drawn == defined


def test_public_errors_are_exported_and_the_worker_interrupt_is_not() -> None:
    public = {name for name, value in vars(errors).items() if isinstance(value, type)
              and issubclass(value, BaseException) and value.__module__ == errors.__name__} - INTERNAL
    assert public <= set(sl.__all__)
    assert "CancelInterrupt" not in sl.__all__ and not hasattr(sl, "TaskCanceled")
    assert issubclass(sl.TaskWasCanceled, sl.TaskFailed) and not issubclass(errors.CancelInterrupt, Exception)


def test_a_task_failure_travels_as_a_pickle_with_its_fields() -> None:
    """(the radical backend sends a TaskFailed back from RP's worker so)"""
    import pickle

    for kind in (sl.TaskFailed, sl.TaskWasCanceled):
        copy = pickle.loads(pickle.dumps(kind("task.000001", "FAILED", "RADICAL-Pilot: worker died")))
        assert type(copy) is kind
        assert (copy.task_uid, copy.state, copy.reason) == ("task.000001", "FAILED", "RADICAL-Pilot: worker died")
        assert str(copy) == "task task.000001 FAILED: RADICAL-Pilot: worker died"
