"""Run a task's (or pilot's) staging directives on the resource, in order; the first failure stops them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scalems_like.errors import ConfigError, StagingError
from scalems_like.staging.actions import perform
from scalems_like.staging.directives import Directive, resolve
from scalems_like.states import TaskState

OUTCOME_WHEN: dict[str, tuple[str, ...]] = {
    TaskState.DONE: ("success", "always"), TaskState.FAILED: ("failure", "always"), TaskState.CANCELED: (),
}
"""By the final state a task ended in, the ``when`` of the output directives that apply."""


def sandbox_roots(pilot_sandbox: Path, task_sandbox: Path | None = None) -> dict[str, Path]:
    """Scope roots on the resource: the pilot sandbox is RESOURCE/SESSION/PILOT."""
    roots = {"pilot": pilot_sandbox, "session": pilot_sandbox.parent, "resource": pilot_sandbox.parent.parent}
    if task_sandbox is not None:
        roots["task"] = task_sandbox
    return roots


def worker_roots(task: Mapping[str, Any]) -> dict[str, Path]:
    return sandbox_roots(Path(os.environ.get("SCALEMS_PILOT_SANDBOX", task["sandbox"] + "/../..")),
                         Path(task["sandbox"]))


def run_directives(directives: Iterable[Directive], roots: Mapping[str, Path], phase: str) -> str | None:
    """Carry out ``directives``; returns None, or the reason (naming the directive) the first one failed."""
    for directive in directives:
        try:
            perform(resolve(directive.source, roots), resolve(directive.target, roots), directive.action,
                    create_parents=directive.create_parents, skip_if_same=directive.skip_if_same)
        except (StagingError, ConfigError, OSError) as error:
            return f"{phase} staging {directive.text!r} failed: {error}"
    return None


def outputs_for(directives: Iterable[Directive], state: str) -> list[Directive]:
    """The output directives that apply to a task that ended in ``state``."""
    return [directive for directive in directives if directive.when in OUTCOME_WHEN.get(state, ())]
