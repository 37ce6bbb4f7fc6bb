"""A live view of a wait: each pilot's state (and bootstrap step; once ACTIVE, its cores and nodes ready and the
nodes out of its schedule), tasks by state, throughput and ETA.

The view is drawn by rich's :class:`~rich.live.Live` on its own timer thread (a few times a second), which asks
:class:`ProgressView` for a fresh picture: nothing happens per task event, and the session's I/O thread never
waits for the display. Each refresh looks only at the tasks not yet final (a final task is counted once and
forgotten). Off when the console is not a terminal (a pipe, a log file, a batch job's output).
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import itertools
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from scalems_like.states import TASK_FINAL, PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.pilot import Pilot
    from scalems_like.client.session import Session
    from scalems_like.client.task import Task

REFRESH_PER_SECOND = 2.0
RATE_WINDOW = 10.0
"""Seconds of history the throughput is measured over."""
_FINAL = tuple(state for state in TaskState if state in TASK_FINAL)  # (in the enum's order)
_WAITING = (TaskState.NEW, TaskState.SUBMITTED, TaskState.QUEUED)
_STATE = operator.attrgetter("state")
_BY_ID = {id(state): state for state in TaskState}
_FINAL_IDS = tuple(id(state) for state in _FINAL)
_LIVE_IDS = frozenset(id(state) for state in TaskState if not state.is_final)


class ProgressView:
    """What the display shows; rich calls :meth:`__rich__` at every refresh."""

    def __init__(self, session: Session, tasks: Sequence[Task], clock: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.total = len(tasks)
        self.remaining = list(tasks)
        self.final: collections.Counter[str] = collections.Counter()
        self.clock = clock
        self.started = clock()
        self.samples: collections.deque[tuple[float, int]] = collections.deque()

    def counts(self) -> dict[str, int]:
        """Tasks by state: queued (NEW, SUBMITTED, QUEUED), running, and each final state.

        Counted in C (``map``, ``Counter`` of the states' ids: an enum's own hash is Python code), so that a
        refresh over 100 000 waiting tasks takes milliseconds.
        """
        ids = list(map(id, map(_STATE, self.remaining)))
        counts = collections.Counter(ids)
        if any(counts[key] for key in _FINAL_IDS):
            for key in _FINAL_IDS:
                self.final[_BY_ID[key].value] += counts[key]
            self.remaining = list(itertools.compress(self.remaining, map(_LIVE_IDS.__contains__, ids)))
        return {"queued": sum(counts[id(state)] for state in _WAITING), "running": counts[id(TaskState.RUNNING)],
                **{state.value: self.final[state.value] for state in _FINAL}}

    def rate(self, finished: int) -> float:
        """Tasks finished per second over the last :data:`RATE_WINDOW` seconds."""
        now = self.clock()
        self.samples.append((now, finished))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW:
            self.samples.popleft()
        then, before = self.samples[0]
        return (finished - before) / (now - then) if now > then else 0.0

    def __rich__(self) -> Group:
        counts = self.counts()
        finished = self.total - len(self.remaining)
        rate = self.rate(finished)
        left = len(self.remaining)
        eta = _duration(left / rate) if rate > 0 and left else "-"
        parts = [f"{finished}/{self.total} final", f"{counts[TaskState.DONE.value]} done",
                 f"{counts['running']} running", f"{counts['queued']} queued"]
        parts += [f"{counts[state.value]} {state.value.lower()}" for state in (TaskState.FAILED, TaskState.CANCELED)
                  if counts[state.value]]
        parts += [f"{rate:,.0f} tasks/s" if rate >= 10 else f"{rate:.1f} tasks/s", f"ETA {eta}",
                  f"{_duration(self.clock() - self.started)} elapsed"]
        grid = Table.grid(padding=(0, 1))
        grid.add_row(Text("tasks", style="bold"), ProgressBar(total=max(self.total, 1), completed=finished, width=30),
                     Text(" · ".join(parts)))
        return Group(*[self.pilot_line(pilot) for pilot in self.session.pilots], grid)

    @staticmethod
    def pilot_line(pilot: Pilot) -> Text:
        state = pilot.state
        text = Text(f"{pilot.uid} ", style="bold")
        text.append(state.value, style={PilotState.ACTIVE: "green", PilotState.FAILED: "red"}.get(state, "yellow"))
        if state is PilotState.BOOTSTRAPPING and pilot.bootstrap_step:
            text.append(f" · bootstrap step: {pilot.bootstrap_step}")
        ready = list(pilot.readiness.values())
        if state is PilotState.ACTIVE and ready:
            cores, up = sum(node.cores for node in ready), sum(1 for node in ready if node.ready_cores)
            text.append(f" · {pilot.ready_cores}/{cores} cores ready on {up}/{len(ready)} node(s)")
            out = [node.name for node in ready if node.out]
            if out:
                text.append(f" · out of the schedule: {', '.join(out)}", style="red")
        elif pilot.nodes:
            text.append(f" · {sum(node[1] for node in pilot.nodes)} cores on {len(pilot.nodes)} node(s)")
        return text


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


@contextlib.contextmanager
def live_progress(session: Session, tasks: Sequence[Task], console: Console | None = None,
                  refresh_per_second: float = REFRESH_PER_SECOND) -> Iterator[ProgressView | None]:
    """Show the progress of ``tasks`` while the block runs (on stderr by default); nothing if the console is
    not a terminal (then it yields None)."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    view = ProgressView(session, tasks)
    with Live(view, console=console, refresh_per_second=refresh_per_second):
        yield view
