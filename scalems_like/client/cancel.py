"""``scalems-like cancel`` of a session whose client is gone (killed, or detached): settle it.

No process holds the session (its client lock is free), so this process takes it as ``reattach`` would
(:func:`scalems_like.client.restore.restore` with a ``cancel_reason``) and ends what is left:

1. What the agents finished while no client listened is collected and keeps its end. Tasks never sent to a pilot
   end CANCELED; a pilot that never reported (queued, starting) ends CANCELED and its batch job is canceled; a
   pilot whose agent ended on its own keeps the end it gave itself (its unfinished tasks: FAILED, interrupted).
2. Live pilots are followed again and shut down: their agents cancel their tasks (CANCELED, with the reason) and
   stop, and each pilot ends CANCELED with the reason.
3. The session closes with the state ``canceled`` in its journal (``sessions``, ``ls``, ``status`` show it; it may
   then be deleted).

A session that a live client holds raises :class:`~scalems_like.errors.SessionInUse` before anything
is read or changed (the caller then goes through that client).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from scalems_like.client.pilot import Pilot
from scalems_like.client.session import CLOSE_PATIENCE, Session
from scalems_like.client.task import Task
from scalems_like.errors import WaitTimeout
from scalems_like.states import PilotState, TaskState

REASON = "canceled by `scalems-like cancel` after the client was gone"


@dataclass(frozen=True)
class Settled:
    """What a cancel of a session without a client did."""

    pilots: int
    """Pilots it ended CANCELED."""
    tasks: int
    """Tasks it ended CANCELED."""
    states: dict[str, int]
    """Every task of the session by final state, afterwards."""


def cancel_session(uid: str, report: Callable[[str], None], *, reason: str = REASON,
                   patience: float = CLOSE_PATIENCE) -> Settled:
    """Settle session ``uid`` (see the module); ``report`` is told each step as it begins. Raises SessionInUse
    if a live client holds the session, ScalemsError if it cannot be restored (nothing changed then)."""
    report(f"{uid}: no client holds it: reattaching to its pilots to cancel them")
    session = Session._restore(uid, resume=False, pilot_description=None, cancel_reason=reason)
    close_patience = patience
    try:
        live = [pilot for pilot in session.pilots if not pilot.state.is_final]
        unfinished = sum(not task.state.is_final for task in session.tasks)
        if live:
            report(f"{uid}: shutting down {', '.join(f'{pilot.uid} ({pilot.state.value})' for pilot in live)}; "
                   f"{unfinished} unfinished task(s) end CANCELED (waiting up to {patience:.0f} s)")
        session._cancel_pilots(reason)
        if not wait_for_ends(session, live, patience, report):
            close_patience = 0.0  # (waited already: the close cancels their jobs at once)
    finally:
        report(f"{uid}: closing the session")
        session._end(close_patience, "canceled")
    return outcome(session.pilots, session.tasks, reason)


def wait_for_ends(session: Session, pilots: list[Pilot], patience: float, report: Callable[[str], None]) -> bool:
    """Wait up to ``patience`` s for ``pilots`` to end, reporting each end as it comes; False if one did not."""
    deadline = time.monotonic() + patience
    waiting = list(pilots)
    try:
        while waiting:
            session._wait_for(lambda: any(pilot.state.is_final for pilot in waiting), deadline - time.monotonic(),
                              lambda: "")
            for pilot in [pilot for pilot in waiting if pilot.state.is_final]:
                report(f"{session.uid}: {pilot.uid} {pilot.state.value}")
                waiting.remove(pilot)
    except WaitTimeout:
        report(f"{session.uid}: {', '.join(pilot.uid for pilot in waiting)} did not end within {patience:.0f} s: "
               "canceling the batch job(s)")
        return False
    return True


def outcome(pilots: list[Pilot], tasks: list[Task], reason: str) -> Settled:
    states: dict[str, int] = {}
    for task in tasks:
        states[task.state.value] = states.get(task.state.value, 0) + 1
    return Settled(
        pilots=sum(pilot.state is PilotState.CANCELED and pilot.failure == reason for pilot in pilots),
        tasks=sum(task.state is TaskState.CANCELED and reason in (task.reason or "") for task in tasks),
        states=states)
