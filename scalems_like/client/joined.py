"""The session ``scalems-like run`` holds for its script, joined by the script's own ``sl.Session()``.

A script written to run alone opens its own session and pilot (``with sl.Session() as s: s.submit_pilot(...)``).
Under ``run`` that would make a second session and pilot beside the run's, and the run's summary would count only
the run's tasks. So while ``run`` runs a script (:func:`held_by_run`):

- ``sl.Session()`` — with no arguments, or with the run's uid — *is* the run's session (the same object as
  ``sl.current_session()``); other arguments (another uid, ``journal=False``) are refused with a ConfigError
  saying what to do.
- The script's first ``submit_pilot`` returns the run's pilot (submitted then if the run had not yet), if the run's
  pilot description can stand for the script's (see :func:`run_pilot_misfit`), else is refused with a ConfigError
  naming the field, both values and the ``run`` option that gives the pilot that shape. Later calls submit pilots
  as usual (pilots the script adds).
- ``close()`` (and the end of ``with``) in the script leaves the session open: the run waits for every task,
  then closes it. ``detach()`` is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ConfigError

if TYPE_CHECKING:
    from scalems_like.client.pilot import Pilot
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.client")


@dataclasses.dataclass
class RunHold:
    session: Session
    description: PilotDescription
    """The run's pilot description."""
    pilot: Callable[[], Pilot]
    """The run's pilot (submitted by the call if it was not yet)."""
    claimed: bool = False
    """The script's first ``submit_pilot`` took the run's pilot."""


_HOLDS: list[RunHold] = []


@contextlib.contextmanager
def held_by_run(session: Session, description: PilotDescription, pilot: Callable[[], Pilot]) -> Iterator[None]:
    """(``scalems-like run``) while the script runs and its tasks are waited for, ``session`` is the one
    ``sl.Session()`` returns and the script cannot close, and ``pilot()`` gives the run's pilot (of
    ``description``) to the script's first ``submit_pilot`` (see the module)."""
    hold = RunHold(session, description, pilot)
    _HOLDS.append(hold)
    try:
        yield
    finally:
        _HOLDS.remove(hold)


def run_session() -> Session | None:
    return _HOLDS[-1].session if _HOLDS else None


def holds(session: Session) -> bool:
    """True while ``scalems-like run`` holds ``session`` for its script."""
    return any(hold.session is session for hold in _HOLDS)


def joined(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Session | None:
    """``sl.Session(*args, **kwargs)`` under ``run``: the run's session, or ConfigError; None outside run (or for
    arguments ``Session`` does not take: the call then says so)."""
    session = run_session()
    if session is None or len(args) > 1 or set(kwargs) - {"uid", "journal", "backend"} or (args and "uid" in kwargs):
        return None
    uid, journal = args[0] if args else kwargs.get("uid"), kwargs.get("journal", True)
    runs_on = session._engine.backend_name()
    backend = kwargs.get("backend", runs_on)
    if backend != runs_on:
        raise ConfigError(f"sl.Session(backend={backend!r}) inside `scalems-like run`, whose session runs on backend "
                          f"{runs_on!r}: run the script with `scalems-like run --backend {backend}`")
    if (uid is None or uid == session.uid) and journal:
        return session
    asked = ", ".join(([repr(uid)] if uid is not None else []) + ([] if journal else [f"journal={journal!r}"]))
    raise ConfigError(f"sl.Session({asked}) inside `scalems-like run` would open a second session beside the "
                      f"run's ({session.uid}), whose summary would not count its tasks: use sl.Session() or "
                      "sl.current_session() (the run's session), or run the script with `python SCRIPT` to give it "
                      "its own session")


_AT_MOST = ("cores", "gpus", "nodes", "runtime")
"""Fields the run's pilot fits when it has at least as much."""
_RUN_OPTIONS = {"resource": "--resource {}", "environment": "--env {}"}
"""How ``run`` is told a field that its ``--pilot`` does not take."""
_PILOT_OPTION = ("cores", "gpus", "nodes", "runtime", "queue", "account", "project")


def shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def run_pilot_misfit(asked: PilotDescription, runs: PilotDescription) -> str | None:
    """The first field of ``asked`` that the run's pilot (``runs``) cannot stand for, or None.

    A field at its default asks for nothing. The run's pilot stands for fewer or equal cores (any, when it takes
    whole nodes), GPUs, nodes and runtime, and the same resource, queue, account, project, environment and
    pre-bootstrap lines; never for pilot staging directives (the run's pilot was submitted without them).
    """
    for field in dataclasses.fields(PilotDescription):
        value = getattr(asked, field.name)
        default = field.default if field.default is not dataclasses.MISSING else None
        if value == default:
            continue
        theirs = getattr(runs, field.name)
        if field.name in ("input_staging", "output_staging"):
            fits = False
        elif field.name == "cores":
            fits = theirs is None or value <= theirs
        elif field.name in _AT_MOST:
            fits = value <= theirs
        else:
            fits = value == theirs
        if not fits:
            return field.name
    return None


def claim_run_pilot(session: Session, description: PilotDescription) -> Pilot | None:
    """The run's pilot for the script's first ``submit_pilot`` (ConfigError if it does not fit); None when
    ``session`` is not held by run or its pilot was taken already."""
    hold = next((hold for hold in _HOLDS if hold.session is session), None)
    if hold is None or hold.claimed or description is hold.description:  # (the last: the run's own submission)
        return None
    misfit = run_pilot_misfit(description, hold.description)
    if misfit is not None:
        raise ConfigError(refusal(misfit, getattr(description, misfit), hold.description))
    hold.claimed = True  # (first: a run that submits its pilot now comes back here, and submits it)
    pilot = hold.pilot()
    log.info("session %s: submit_pilot inside `scalems-like run` takes the run's pilot %s", session.uid, pilot.uid)
    return pilot


def refusal(field: str, value: object, runs: PilotDescription) -> str:
    """What to do about a ``submit_pilot`` whose ``field`` = ``value`` the run's pilot (``runs``) cannot stand
    for."""
    theirs = getattr(runs, field)
    has = f"has {field}={shown(theirs)}" if theirs not in (None, ()) else f"has no {field}"
    head = f"submit_pilot({field}={shown(value)}) inside `scalems-like run`: the run's pilot {has}"
    if field in _PILOT_OPTION:
        option = f"--pilot {field}={value:g}" if isinstance(value, (int, float)) else f"--pilot {field}={value}"
    elif field in _RUN_OPTIONS and isinstance(value, str):
        option = _RUN_OPTIONS[field].format(value)
    else:
        return (f"{head}; it cannot take {field}: run the script with `python SCRIPT` (its own session and pilot), "
                "or drop submit_pilot from the script: the run's pilot runs its tasks")
    return (f"{head}; give the pilot's shape to run (`scalems-like run {option} ...`), or drop submit_pilot from "
            "the script: the run's pilot runs its tasks")
