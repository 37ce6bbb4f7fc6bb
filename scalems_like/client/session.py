"""The user's entry point: a :class:`Session` owns pilots and tasks, and closes them when it ends."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from scalems_like import paths
from scalems_like.backends import engine_for
from scalems_like.client import joined
from scalems_like.client.pilot import Pilot
from scalems_like.client.remote_staging import RemoteStaging
from scalems_like.client.task import Task
from scalems_like.client.task_wire import to_wire_all
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ConfigError, NoPilot, ScalemsError, WaitTimeout
from scalems_like.protocol.curve import SESSION_KEYS_FILE, SessionKeys, insecure_requested, warn_insecure
from scalems_like.record.client_lock import ClientLock
from scalems_like.record.journal import Journal, journal_path, now_text
from scalems_like.resources import ResourceConfig
from scalems_like.staging.directives import check_client_side
from scalems_like.states import PilotState, pilot_reached

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("scalems_like.client")

CLOSE_PATIENCE = 30.0
"""Seconds ``close()`` waits for agents to shut down before canceling their batch jobs."""


def new_session_uid() -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d.%H%M%S")
    return f"session.{stamp}.{os.getpid()}.{os.urandom(2).hex()}"


_CURRENT: list[Session] = []
"""Sessions opened by ``with`` (innermost last); the first is what :func:`current_session` returns."""


_OPEN: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()
"""The sessions whose client is this process (open, not yet closed or detached), by uid."""


def open_here(uid: str) -> Session | None:
    """Session ``uid`` if this process is its client now (so another part of it shares the session rather than
    reattach it, which the client lock refuses), else None."""
    return _OPEN.get(uid)


def current_session() -> Session:
    """The session a workflow script runs in: the one ``scalems-like run`` opened for it (or the outermost
    ``with sl.Session()`` of this process)."""
    if not _CURRENT:
        raise ScalemsError("no current session: run the script with `scalems-like run SCRIPT`, or submit inside "
                           "`with sl.Session() as session:`")
    return _CURRENT[0]


_S = TypeVar("_S")


class _SessionType(type):
    def __call__(cls: type[_S], *args: Any, **kwargs: Any) -> _S:
        """``Session(...)`` inside ``scalems-like run``: the run's session (see :mod:`scalems_like.client.joined`);
        a subclass of Session is made as asked."""
        run_session = joined.joined(args, kwargs) if cls is Session else None
        if run_session is not None:
            return cast(_S, run_session)
        return type.__call__(cls, *args, **kwargs)  # type: ignore[no-any-return]


class Session(metaclass=_SessionType):
    """A workflow session: submit pilots and tasks, wait for them; ``close()`` (or ``with``) ends everything.

    ``Session()`` does no I/O; the session opens on ``with`` or on the first pilot. ``journal=False``: keep no
    journal (no reattach or resume; for throwaway sessions and to measure what journaling costs). ``backend``:
    ``"native"`` (scalems_like's agents) or ``"radical"`` (RADICAL-Pilot's pilots and tasks; see docs/radical.md).
    Inside ``scalems-like run``, ``Session()`` is the run's session, and closing it is left to the run.
    """

    def __init__(self, uid: str | None = None, *, journal: bool = True, backend: str = "native") -> None:
        self.uid = uid or new_session_uid()
        self._journaling = journal
        self._engine = engine_for(backend, self.uid)
        """Owns the tasks, pilots and everything else that changes (see its module); reached only through its
        command API."""
        self._pickled_functions: dict[Any, bytes] = {}
        """Functions pickled by earlier submissions (a cache of this session's submitters)."""
        self._opened = False
        self._closed = False
        self._journal: Journal | None = None
        self._client_lock: ClientLock | None = None

    def __repr__(self) -> str:
        return f"<Session {self.uid} pilots={len(self.pilots)} tasks={len(self.tasks)}>"

    def __enter__(self) -> Session:
        self.open()
        _CURRENT.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        if self in _CURRENT:
            _CURRENT.remove(self)
        self.close()

    def open(self) -> None:
        """Create the session's journal and start its I/O thread (done by ``with`` or the first submission)."""
        if self._closed:
            raise ScalemsError(f"session {self.uid} is closed")
        if self._opened:
            return
        locked_here = self._journaling and self._client_lock is None  # (a restore took it before reading)
        if locked_here:  # first: another live client's session is not touched
            directory = journal_path(self.uid).parent
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._client_lock = ClientLock.acquire(directory, self.uid)
        created = self._journal is None and self._journaling
        try:
            if created:
                self._journal = Journal.create(self.uid, {"uid": self.uid, "created": now_text()})
            if self._journal is not None:
                self._journal.set("state", "open")
                self._journal.set("client_pid", str(os.getpid()))
                self._journal.set("working_directory", str(Path.cwd()))
                self._journal.start()
            self._engine.start(self._session_keys(), self._journal)
        except BaseException:  # nothing taken here is left held (a restore releases what it took)
            if created and self._journal is not None:
                self._journal.close()
                self._journal = None
            if locked_here:
                self._release_client_lock()
            raise
        self._opened = True
        _OPEN[self.uid] = self

    def _session_keys(self) -> SessionKeys | None:
        """The session's keys: those its journal directory holds (a reattached session), or new ones."""
        if insecure_requested():
            warn_insecure(f"session {self.uid}")
            return None
        directory = self._journal.path.parent if self._journal is not None else None
        if directory is not None and (directory / SESSION_KEYS_FILE).exists():
            return SessionKeys.read(directory)
        keys = SessionKeys.generate()
        if directory is not None:
            keys.write(directory)
        return keys

    # -- durable sessions ----------------------------------------------------------------------------
    @classmethod
    def reattach(cls, uid: str) -> Session:
        """The session ``uid`` as its journal left it, reconnected to its live pilots.

        Results that came in while no client listened are delivered (from the agents, or from their journals
        in the pilot sandboxes); tasks of pilots that are gone end FAILED with the reason.
        """
        return cls._restore(uid, resume=False, pilot_description=None)

    @classmethod
    def resume(cls, uid: str, pilot_description: PilotDescription | None = None) -> Session:
        """Like :meth:`reattach`, but the unfinished tasks of pilots that are gone run again, on a new pilot
        (``pilot_description``, default: that of the session's last pilot). Finished tasks never run again;
        tasks that were running run again only if ``idempotent`` or with retries left, else end FAILED."""
        return cls._restore(uid, resume=True, pilot_description=pilot_description)

    @classmethod
    def _restore(cls, uid: str, *, resume: bool, pilot_description: PilotDescription | None,
                 cancel_reason: str | None = None) -> Session:
        """Reattach, resume, or (``cancel_reason``) take a session to cancel it (see
        :mod:`scalems_like.client.restore`)."""
        from scalems_like.client.restore import restore

        session = cls(uid)
        return restore(session, session._engine, resume=resume, pilot_description=pilot_description,
                       cancel_reason=cancel_reason)

    def _adopt_record(self, journal: Journal, lock: ClientLock) -> None:
        """(a restore) keep the journal and the client lock it took: the session opens on them."""
        self._journal, self._client_lock = journal, lock

    def _abandon(self, state: str) -> None:
        """(a restore that failed) stop what was started, leave the journal's session ``state`` as it was before,
        close the journal, let the lock go. Pilots go on (as after ``detach``)."""
        self._closed = True
        if self._opened:
            self._engine.stop()
        if self._journal is not None:
            self._journal.set("state", state)
            self._journal.close()
        self._release_client_lock()

    def detach(self) -> None:
        """Leave without ending anything: the pilots go on, results wait for ``Session.reattach(uid)``."""
        if not self._opened or self._closed:
            return
        if joined.holds(self):
            raise ScalemsError(f"session {self.uid} is the session of `scalems-like run`, which waits for its tasks "
                               "and closes it: it cannot be detached (run the script with `python SCRIPT` to detach)")
        backend = self._engine.backend_name()
        if backend != "native":
            raise ConfigError(f"session {self.uid}: backend {backend!r} cannot detach (RADICAL-Pilot's pilots end "
                              "with the session that started them); close() it")
        self._engine.release_gateways(stop=False)
        self._engine.stop()
        self._closed = True
        if self._journal is not None:
            self._journal.set("state", "detached")
            self._journal.close()
        self._release_client_lock()

    # -- what the session owns -----------------------------------------------------------------------
    @property
    def tasks(self) -> list[Task]:
        """Every task of the session, in submission order."""
        return self._engine.task_list()

    @property
    def pilots(self) -> list[Pilot]:
        return self._engine.pilot_list()

    def sandbox(self, resource: str = "local") -> Path:
        """The session's sandbox on ``resource``."""
        config = self._engine.resource(resource)
        return paths.expand(config.sandbox) / self.uid

    def _remote_head(self, task: Task, path: Path, limit: int) -> tuple[bytes, int] | None:
        """(``Task.stdout``) the first ``limit`` bytes of a file of a task whose pilot is on a remote resource,
        and its size, read over ssh while the session is open; None for a task of a pilot on this side (or a file
        that is not there, or a session no longer connected)."""
        pilot = next((pilot for pilot in self.pilots if pilot.uid == task.pilot), None)
        link = self._engine.connected_gateway(pilot.resource.name) if pilot and pilot.resource.login else None
        if pilot is None or link is None:
            return None
        if path.is_relative_to(pilot.sandbox):  # (the mirror's path: the same place in the cluster's sandbox)
            path = Path(link.remote_sandbox(pilot.uid)) / path.relative_to(pilot.sandbox)
        return link.read_head(str(path), limit)

    def record_info(self, key: str, value: str) -> None:
        """Keep ``key = value`` in the session's journal (e.g. the workflow's parameters; read by ``status``)."""
        self.open()
        if self._journal is not None:
            self._journal.set(key, value)

    def use_resource(self, config: ResourceConfig) -> None:
        """Use ``config`` for the pilots that name ``config.name`` (instead of loading it from the files)."""
        self._engine.use_resource(config)

    # -- pilots --------------------------------------------------------------------------------------
    def submit_pilot(self, description: PilotDescription) -> Pilot:
        """Render and submit a pilot job; returns at once with the pilot SUBMITTED (not yet ACTIVE).

        Raises ConfigError for a bad description or resource config, SubmitError with the batch system's
        message if the job is refused.
        """
        if not isinstance(description, PilotDescription):
            raise ConfigError(f"submit_pilot(description={description!r}): expected a PilotDescription")
        with self._engine.new_pilot() as number:
            run_pilot = joined.claim_run_pilot(self, description)
            if run_pilot is not None:  # (inside `scalems-like run`: the run's pilot, not a second one)
                return run_pilot
            for field in ("input_staging", "output_staging"):
                for directive in getattr(description, field):
                    check_client_side(directive, Path.cwd(), f"PilotDescription.{field}")
            return self._engine.launch_pilot(self, description, number)

    def _wait_pilot(self, pilot: Pilot, state: PilotState | None, timeout: float | None) -> None:
        def reached() -> bool:
            return pilot.state.is_final or (state is not None and pilot_reached(pilot.state, state))
        self._wait_for(reached, timeout, lambda: f"pilot {pilot.uid} is {pilot.state.value}")

    def _cancel_pilot(self, pilot: Pilot) -> None:
        self._engine.cancel_pilot(pilot.uid, "canceled by the user")

    def _cancel_pilots(self, reason: str) -> None:
        """(``scalems-like cancel``) every pilot not final ends CANCELED with ``reason``: its agent is told to stop
        (its tasks end CANCELED), or its batch job is canceled."""
        self._engine.cancel_pilots(reason)

    # -- tasks ---------------------------------------------------------------------------------------
    def submit_tasks(self, descriptions: Iterable[TaskDescription]) -> list[Task]:
        """Submit tasks (they run on this session's ACTIVE pilots); returns their handles at once."""
        self.open()
        descriptions = list(descriptions)
        client_root = Path.cwd()
        for index, description in enumerate(descriptions):
            if not isinstance(description, TaskDescription):
                raise ConfigError(f"submit_tasks: item {index} = {description!r}: expected a TaskDescription")
            for field in ("input_staging", "output_staging"):
                for directive in getattr(description, field):
                    check_client_side(directive, client_root, f"submit_tasks: item {index}: {field}")
        link = self._engine.remote_link()
        if link is None:
            return self._engine.submit(descriptions, to_wire_all(descriptions, client_root, self._pickled_functions),
                                       self)
        remote = RemoteStaging(link, client_root)  # client:// is here, the tasks run behind ssh
        encoded = to_wire_all(descriptions, client_root, self._pickled_functions, remote.outbound)
        remote.send()
        return self._engine.submit(descriptions, encoded, self, remote)

    def wait_tasks(self, tasks: Sequence[Task] | None = None, timeout: float | None = None, *,
                   progress: bool | Console = False) -> list[Task]:
        """Block until every task (default: all of the session's) is final. Raises WaitTimeout on timeout, saying
        how the session's pilots stand. Without a timeout, raises NoPilot at once if the session has no pilot (and
        none is being submitted): nothing could run the tasks (they stay queued for the first pilot).

        ``progress``: show a live view meanwhile (pilots, tasks by state, throughput, ETA) on stderr, or on the
        rich Console given; only on a terminal.
        """
        waited = list(self.tasks if tasks is None else tasks)
        first_unfinished = 0  # every task before it is final (a final state is never left)

        def remaining() -> list[Task]:
            return [task for task in waited[first_unfinished:] if not task.state.is_final]

        def reached() -> bool:  # each wake checks from the first unfinished task on: tasks end roughly in order
            nonlocal first_unfinished
            while first_unfinished < len(waited) and waited[first_unfinished].state.is_final:
                first_unfinished += 1
            if first_unfinished < len(waited) and timeout is None and not self._engine.has_pilots():
                raise NoPilot(f"{len(remaining())} task(s) cannot run: the session has no pilot, so waiting without a "
                              "timeout would never end; submit one with session.submit_pilot(...) (the tasks stay "
                              "queued for it), or wait with a timeout for a pilot that another thread submits")
            return first_unfinished == len(waited)
        with contextlib.ExitStack() as display:
            if progress is not False:
                from scalems_like.cli.progress import live_progress
                display.enter_context(live_progress(self, waited, None if progress is True else progress))
            self._wait_for(reached, timeout, lambda: f"{len(remaining())} task(s) not final, e.g. {remaining()[:3]}; "
                           f"{self._engine.describe_pilots()}")
        return list(self.tasks if tasks is None else tasks)

    def profile(self, *, frame: bool = True) -> Any:
        """Every recorded event of this session, one row each (task states with where and when and the worker
        slot, pilot states, bootstrap steps, workers started and stopped, ...; see
        :mod:`scalems_like.record.profile`): a pandas DataFrame when pandas is installed and ``frame``, else a
        list of dicts."""
        from scalems_like.record.profile import as_frame, load_rows

        if self._journal is None:
            raise ScalemsError(f"session {self.uid} keeps no journal (journal=False): it has no profile")
        if self._opened and not self._closed:  # what the I/O thread holds goes to the journal first
            self._engine.flush_profile()
            self._journal.flush()
        rows = load_rows(self.uid)
        return as_frame(rows) if frame else rows

    def cancel_tasks(self, tasks: Sequence[Task]) -> None:
        """Cancel tasks: those still on the client end CANCELED at once, the others when their agent says so."""
        self._engine.cancel(list(tasks))

    def _wait_for(self, reached: Callable[[], bool], timeout: float | None, describe: Callable[[], str]) -> None:
        self._engine.wait_for(reached, timeout, describe)

    # -- the end -------------------------------------------------------------------------------------
    def close(self, patience: float = CLOSE_PATIENCE) -> None:
        """Cancel unfinished tasks, shut the pilots down and wait (up to ``patience`` s) for them to end.

        Inside ``scalems-like run``, on the run's session: nothing (the run waits for every task, then closes it).
        """
        if joined.holds(self):
            log.info("session %s: close() inside `scalems-like run` leaves it open: the run waits for its tasks, "
                     "then closes it", self.uid)
            return
        self._end(patience, "closed")

    def _end(self, patience: float, state: str) -> None:
        """``close()``, leaving ``state`` in the journal ("closed"; "canceled" after ``scalems-like cancel``)."""
        if self._closed or not self._opened:
            self._closed = True
            return
        try:
            apps = sys.modules.get("scalems_like.client.apps")
            if apps is not None:  # app results being written to the cache are written before the session ends
                apps.drain()
            self._shut_pilots_down(patience)
            self._engine.end_unfinished("session closed")
        finally:
            self._engine.release_gateways(stop=True)
            self._engine.stop()
            self._closed = True
            if self._journal is not None:
                self._journal.set("state", state)
                self._journal.close()
            self._release_client_lock()

    def _release_client_lock(self) -> None:
        """Let another client reattach (see :mod:`scalems_like.record.client_lock`)."""
        if _OPEN.get(self.uid) is self:
            del _OPEN[self.uid]
        if self._client_lock is not None:
            self._client_lock.release()
            self._client_lock = None

    def _shut_pilots_down(self, patience: float) -> None:
        self._engine.shut_down("session closed")
        try:
            self._wait_for(lambda: all(pilot.state.is_final for pilot in self._engine.pilot_list()), patience,
                           lambda: "")
        except WaitTimeout:
            log.warning("pilots did not end within %s s of close(); canceling their jobs", patience)
            self._engine.give_up("did not shut down when the session closed")
