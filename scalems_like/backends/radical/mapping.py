"""Our descriptions as RADICAL-Pilot's: what maps onto ``rp.PilotDescription``/``rp.TaskDescription`` and what RP
cannot do (refused at once with a :class:`~scalems_like.errors.ConfigError` naming the backend and the field,
never dropped). Pure functions on plain dicts: nothing here imports radical.pilot (``rp.*Description(dict)`` is
made by the engine), so the checks run where RP is not installed too. See docs/radical.md for the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ConfigError
from scalems_like.staging.directives import Directive

BACKEND = "radical"

_RP_SCOPES = {"client": "client", "task": "task", "pilot": "pilot", "session": "session", "resource": "resource"}
"""Our staging scopes and RP's of the same meaning (``file`` is ``file://localhost/PATH`` in RP)."""
_RP_ACTIONS = {"copy": "Copy", "link": "Link", "move": "Move"}
"""rp.COPY, rp.LINK, rp.MOVE (between sandboxes); anything that touches the client is rp.TRANSFER."""


def refused(owner: str, field: str, value: object, why: str) -> ConfigError:
    return ConfigError(f"backend {BACKEND!r}: {owner}.{field} = {value!r}: {why}")


def check_pilot(description: PilotDescription) -> None:
    """Refuse what RADICAL-Pilot's pilots cannot do (ConfigError naming the backend and the field)."""
    owner = "PilotDescription"
    if description.environment is not None:
        raise refused(owner, "environment", description.environment, "environment specs and profiles are built by "
                      "scalems_like's bootstrap, which RADICAL-Pilot does not run (RP's pilots use the resource "
                      "config's virtualenv; leave environment=None)")
    if description.pre_bootstrap:
        raise refused(owner, "pre_bootstrap", list(description.pre_bootstrap), "RADICAL-Pilot runs no scalems_like "
                      "bootstrap (put such lines in RP's resource config, pre_bootstrap_0)")
    for field in ("input_staging", "output_staging"):
        if getattr(description, field):
            raise refused(owner, field, [d.text for d in getattr(description, field)], "pilot staging is not mapped "
                          "to RADICAL-Pilot (stage per task instead)")


def pilot_fields(description: PilotDescription) -> dict[str, Any]:
    """The ``rp.PilotDescription`` fields of ``description`` (our runtime is seconds, RP's minutes)."""
    fields: dict[str, Any] = {"resource": description.resource, "runtime": max(1, math.ceil(description.runtime / 60))}
    if description.cores is not None:
        fields["cores"] = description.cores * description.nodes if description.nodes > 1 else description.cores
    else:
        fields["nodes"] = description.nodes
    if description.gpus:
        fields["gpus"] = description.gpus
    if description.queue:
        fields["queue"] = description.queue
    if description.account or description.project:
        fields["project"] = description.account or description.project
    return fields


def check_task(description: TaskDescription, where: str) -> None:
    """Refuse what RADICAL-Pilot's tasks cannot do; ``where`` names the task ("submit_tasks: item 3")."""
    owner = f"{where}: TaskDescription"
    if description.stdin is not None:
        raise refused(owner, "stdin", description.stdin, "RADICAL-Pilot tasks have no standard input file")
    if description.wrapper:
        raise refused(owner, "wrapper", list(description.wrapper), "RADICAL-Pilot launches tasks itself (use "
                      "RP's pre_exec in its resource config)")
    if not description.inherit_environment:
        raise refused(owner, "inherit_environment", False, "RADICAL-Pilot always starts tasks in the pilot's "
                      "environment")
    if description.function is not None and (description.ranks > 1 or description.gpus):
        field = "ranks" if description.ranks > 1 else "gpus"
        raise refused(owner, field, getattr(description, field), "function tasks run in one raptor worker of one "
                      "core (no ranks or GPUs)")
    if description.function is not None and (description.input_staging or description.output_staging):
        raise refused(owner, "input_staging" if description.input_staging else "output_staging", "...",
                      "RADICAL-Pilot stages files for executable tasks only")
    for field in ("input_staging", "output_staging"):
        staging_directives(getattr(description, field), f"{owner}.{field}")


def staging_directives(directives: Sequence[Directive], where: str) -> list[dict[str, Any]]:
    """Our directives as RP's (``{"source", "target", "action", "flags"}``); ConfigError for what RP lacks."""
    mapped = []
    for directive in directives:
        if directive.action not in _RP_ACTIONS:
            raise ConfigError(f"backend {BACKEND!r}: {where}: {directive.text!r}: action {directive.action!r} has no "
                              f"RADICAL-Pilot equivalent (it has {', '.join(_RP_ACTIONS)})")
        if directive.skip_if_same:
            raise ConfigError(f"backend {BACKEND!r}: {where}: {directive.text!r}: skip_if_same has no RADICAL-Pilot "
                              "equivalent")
        if directive.when != "success":
            raise ConfigError(f"backend {BACKEND!r}: {where}: {directive.text!r}: when = {directive.when!r}: "
                              "RADICAL-Pilot stages outputs of successful tasks only")
        touches_client = "client" in (directive.source.scope, directive.target.scope)
        mapped.append({"source": _rp_location(directive.source), "target": _rp_location(directive.target),
                       "action": "Transfer" if touches_client else _RP_ACTIONS[directive.action],
                       "flags": 1 if directive.create_parents else 0})  # rp.CREATE_PARENTS == 1
    return mapped


def _rp_location(location: Any) -> str:
    if location.scope == "file":
        return f"file://localhost{location.path}"
    return f"{_RP_SCOPES[location.scope]}:///{location.path.lstrip('/')}"


def task_fields(description: TaskDescription, uid: str) -> dict[str, Any]:
    """The ``rp.TaskDescription`` fields of an executable task (function tasks: see the engine)."""
    fields: dict[str, Any] = {
        "uid": uid, "name": description.name or uid, "executable": description.executable,
        "arguments": list(description.arguments), "ranks": description.ranks,
        "cores_per_rank": description.cores, "gpus_per_rank": description.gpus,
        "environment": dict(description.environment), "stdout": description.stdout, "stderr": description.stderr,
        "input_staging": staging_directives(description.input_staging, "input_staging"),
        "output_staging": staging_directives(description.output_staging, "output_staging"),
    }
    if description.timeout is not None:
        fields["timeout"] = description.timeout
    if description.working_directory is not None:
        fields["pre_exec"] = [f"cd {_quoted(description.working_directory)}"]
    return fields


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
