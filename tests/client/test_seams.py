"""The engine owns the client's state, and its command API is the only way in: the modules that work for users
(Session, the pilot submission, restore, cancel) call the commands that ``client/engine.py``'s docstring lists and
touch no field of the engine; the docstring's list and the Engine class agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from scalems_like.client import engine

CLIENT = Path(engine.__file__).parent
CALLERS = ("session.py", "pilot_submission.py", "restore.py", "cancel.py", "pilot.py", "joined.py", "apps.py")
"""The client's modules outside the engine (and the modules that run on its thread for it)."""


def command_api() -> set[str]:
    listed = (engine.__doc__ or "").split("The command API", 1)[1].split("\n\n", 2)[1]
    return set(re.findall(r"``(\w+)\(", listed))


def engine_uses(path: Path) -> list[tuple[int, str, bool]]:
    """(line, attribute, called) of every ``self._engine.X`` / ``session._engine.X`` / ``engine.X`` in a module."""
    tree = ast.parse(path.read_text())
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if (isinstance(owner, ast.Attribute) and owner.attr == "_engine") or (
                isinstance(owner, ast.Name) and owner.id == "engine"):
            uses.append((node.lineno, node.attr, id(node) in called))
    return uses


def test_the_listed_commands_are_the_engines() -> None:
    api = command_api()
    assert len(api) > 20
    assert {name for name in api if not callable(getattr(engine.Engine, name, None))} == set()


def test_callers_reach_the_engine_only_through_its_commands() -> None:
    api = command_api()
    wrong = [f"{name}:{line}: engine.{attribute}{'()' if called else ''}" for name in CALLERS
             for line, attribute, called in engine_uses(CLIENT / name) if attribute not in api or not called]
    assert wrong == []


def test_the_check_sees_a_field_reached_into(tmp_path: Path) -> None:
    module = tmp_path / "caller.py"
    module.write_text("def f(self):\n    self._engine.pending.clear()\n    self._engine.cancel([])\n")
    assert sorted(engine_uses(module)) == [(2, "pending", False), (3, "cancel", True)]
