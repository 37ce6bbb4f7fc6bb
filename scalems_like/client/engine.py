"""The session's I/O thread: owns the session's state and the ZeroMQ socket to the agents, and applies every change.

The engine owns every piece of the client's mutable state: the tasks and pilots (their handles, and what it tracks
of each followed pilot in a :class:`~scalems_like.client.pilot_lifecycle.PilotRecord`), the tasks waiting on the
client, the resource configs and batch adapters in use, the journal's pending batch, the lock and the condition
that waiters sleep on. :class:`~scalems_like.client.session.Session` validates what users ask for and calls the
command API below; :mod:`~scalems_like.client.restore` rebuilds a session through it too. Nothing outside the
engine (and the modules that work on its thread for it: :mod:`~scalems_like.client.pilot_lifecycle`,
:mod:`~scalems_like.client.reconnect`) reads or writes its fields.

The command API (callable from any thread):

- life: ``start(keys, journal)``, ``stop()``, ``load(tasks, pilots)`` (a restored session, before ``start``);
- tasks: ``submit(descriptions, wires, owner, remote)`` (handles at once; queued on the I/O thread), ``cancel(tasks)``;
- pilots: ``launch_pilot(session, description, number)`` (the pilot of a checked description, submitted: by
  batch job here, by RADICAL-Pilot in :mod:`scalems_like.backends.radical`), ``new_pilot()`` (a uid, the
  submission counted while under way), ``register_pilot(record)``,
  ``pilot_submitted(record, native_id)``, ``pilot_refused(record, why)``, ``job_events(record)`` (the callback a
  batch adapter reports to), ``cancel_pilot(uid, reason)``, ``endpoint_for(address)``;
- remote resources (see :mod:`scalems_like.client.gateway_link`): ``gateway(resource)`` (started or attached on
  first use), ``connected_gateway(name)``, ``remote_link()`` (where tasks' ``client://`` staging goes),
  ``release_gateways(stop)`` (the session ends or detaches);
- the end: ``shut_down(reason)``, ``cancel_pilots(reason)``, ``give_up(reason)``, ``end_unfinished(reason)``,
  ``flush_profile()``;
- restore: ``restore_unsent(wires, cancel_reason)``, ``follow_again(wires, marks, cancel_reason)``,
  ``requeue_interrupted(wires)``, ``waiting_for_a_pilot()``, ``release_held()``;
- queries: ``backend_name()`` ("native"; see :mod:`scalems_like.backends`), ``task_list()``, ``pilot_list()``,
  ``has_pilots()``, ``describe_pilots()``, ``resource(name)``,
  ``use_resource(config)``, ``adapter(resource, session_sandbox)``, ``agent_keys()``, and
  ``wait_for(reached, timeout, describe)``, which sleeps on the engine's condition until its test ``reached`` holds.

Commands that change what the loop works on run on the I/O thread (``post``/``call``, see
:mod:`~scalems_like.client.io_thread`); those that must answer at once (task handles with ordered uids, a resource
config, a pilot's uid) run on the caller's thread under the engine's lock. The loop and its steps, flow control:
:mod:`~scalems_like.client.engine_loop`; how tasks change: :mod:`~scalems_like.client.task_updates`; what pilot
events mean for a pilot: :mod:`~scalems_like.client.pilot_lifecycle`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalems_like import protocol
from scalems_like.adapters import BatchAdapter, JobEvent, adapter_for
from scalems_like.client import reconnect
from scalems_like.client.engine_loop import EngineLoop
from scalems_like.client.gateway_link import GatewayLink
from scalems_like.client.pilot import Pilot, describe_pilots
from scalems_like.client.pilot_job import check_fits
from scalems_like.client.pilot_lifecycle import PilotRecord
from scalems_like.client.pilot_submission import submit_pilot
from scalems_like.client.remote_staging import RemoteStaging
from scalems_like.client.task import Task, TaskOwner
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ConfigError, ScalemsError, WaitTimeout
from scalems_like.network import bind_and_advertise
from scalems_like.protocol.curve import AgentKeys
from scalems_like.record.journal import journal_path
from scalems_like.resources import ResourceConfig, load_resource
from scalems_like.states import PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.client")

LOOPBACK = "127.0.0.1"
"""Where the engine listens for a remote resource's agents: its gateway's relay comes in through ssh."""

class Engine(EngineLoop):
    """The session's engine: its state and loop (:class:`EngineLoop`) and the command API (see the module)."""

    backend = "native"
    """Which backend this engine is (``Session(backend=...)``; another: :mod:`scalems_like.backends`)."""

    # -- life ----------------------------------------------------------------------------------------
    def load(self, tasks: Sequence[Task], pilots: Sequence[Pilot]) -> None:
        """(before ``start``) the tasks and pilots of a restored session, as its journal left them."""
        with self.lock:
            self.tasks.update((task.uid, task) for task in tasks)
            self.pilots.update((pilot.uid, pilot) for pilot in pilots)
            self.pilot_numbers = itertools.count(len(self.pilots))

    # -- queries -------------------------------------------------------------------------------------
    def backend_name(self) -> str:
        return self.backend

    def task_list(self) -> list[Task]:
        with self.lock:
            return list(self.tasks.values())

    def pilot_list(self) -> list[Pilot]:
        with self.lock:
            return list(self.pilots.values())

    def has_pilots(self) -> bool:
        """The session has a pilot, or one is being submitted."""
        with self.lock:
            return bool(self.pilots) or self.pilots_submitting > 0

    def describe_pilots(self) -> str:
        with self.lock:
            return describe_pilots(self.pilots.values(), self.pilots_submitting)

    def wait_for(self, reached: Callable[[], bool], timeout: float | None, describe: Callable[[], str]) -> None:
        """Sleep on the engine's condition until ``reached()`` (called under the lock) holds; WaitTimeout after
        ``timeout`` s, saying ``describe()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while not reached():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeout(f"timed out after {timeout} s: {describe()}")
                self.changed.wait(left if left is not None else 1.0)

    def agent_keys(self) -> AgentKeys | None:
        """The keys a pilot's agent is given (None: the session runs without CurveZMQ)."""
        return self.keys.for_agent if self.keys is not None else None

    def resource(self, name: str) -> ResourceConfig:
        """The resource config ``name`` (loaded from the files once, unless the session was given one)."""
        with self.lock:
            if name not in self.resources:
                self.resources[name] = load_resource(name)
            return self.resources[name]

    def use_resource(self, config: ResourceConfig) -> None:
        with self.lock:
            self.resources[config.name] = config

    def adapter(self, resource: ResourceConfig, session_sandbox: Path) -> BatchAdapter:
        """One adapter (one psij executor, one polling thread) per resource and session; a remote resource's is
        its gateway's."""
        if resource.login:
            return self.gateway(resource).adapter
        with self.lock:
            if resource.name not in self.adapters:
                self.adapters[resource.name] = adapter_for(resource, session_sandbox / "batch")
            return self.adapters[resource.name]

    def gateway(self, resource: ResourceConfig) -> GatewayLink:
        """The gateway of a remote resource (started, or found running and attached to, on first use): agents
        connect to it, and it relays them to the engine's socket on loopback through the ssh connection."""
        with self.gateway_lock:  # (not the engine's lock: starting one waits on the I/O thread)
            with self.lock:
                link = self.gateways.get(resource.name)
            if link is None:
                link = GatewayLink(resource, self.uid, journal_path(self.uid).parent)
                with self.lock:  # a reattached session's pilots there: their mirrors are brought up to date
                    known = [pilot.uid for pilot in self.pilots.values() if pilot.resource.name == resource.name]
                try:
                    link.start(self.endpoint_for(LOOPBACK), known)
                except BaseException:
                    link.detach()  # (the connection it opened is closed: nothing is left behind)
                    raise
                with self.lock:
                    self.gateways[resource.name] = link
        return link

    def connected_gateway(self, name: str) -> GatewayLink | None:
        """The gateway of remote resource ``name`` if this session is attached to it now (else None)."""
        with self.lock:
            return self.gateways.get(name)

    def remote_link(self) -> GatewayLink | None:
        """The gateway that tasks' client:// directives go through: the session's one remote resource's (None
        when the session has none: client:// is a path here). Two remote resources in one session: ConfigError."""
        with self.lock:
            links = list(self.gateways.values())
        if len(links) > 1:
            names = ", ".join(link.config.name for link in links)
            raise ConfigError(f"session {self.uid}: tasks' client:// staging goes over ssh to one remote resource; "
                              f"this session has pilots on {len(links)}: {names}")
        return links[0] if links else None

    def release_gateways(self, *, stop: bool) -> None:
        """The session ends (``stop``: the gateways stop) or detaches (they go on, with the pilots)."""
        with self.lock:
            links, self.gateways = list(self.gateways.values()), {}
        for link in links:
            try:
                link.close() if stop else link.detach()
            except ScalemsError as error:
                log.warning("resource %s: %s", link.config.name, error)

    # -- tasks ---------------------------------------------------------------------------------------
    def submit(self, descriptions: Sequence[TaskDescription], wires: Sequence[Any], owner: TaskOwner,
               remote: RemoteStaging | None = None) -> list[Task]:
        """New tasks, numbered in submission order, journaled and queued for the pilots; their handles at once.
        ``remote``: the batch's client:// outputs are fetched over ssh when its tasks end."""
        tasks, wire = [], {}
        with self.lock:  # numbers and insertion together: concurrent submitters get distinct, ordered uids
            start = len(self.tasks)
            for offset, (description, fields) in enumerate(zip(descriptions, wires, strict=True)):
                task = Task(f"task.{start + offset:06d}", description, owner)
                fields["uid"] = task.uid
                self.tasks[task.uid] = task
                tasks.append(task)
                wire[task.uid] = fields
                if remote is not None and offset in remote.downloads:
                    self.remote_outputs[task.uid] = (remote.link, remote.downloads[offset], remote.client_root)
            if self.journal is not None:
                self.journal.add_tasks([(t.uid, start + offset, wire[t.uid]) for offset, t in enumerate(tasks)])

        def enqueue() -> None:
            self.wire.update(wire)
            self.pending.extend(tasks)
            self.fail_pending_without_pilots("every pilot of the session has ended")
        if not self.post(enqueue):
            raise ScalemsError(f"session {self.uid} is closed")
        return tasks

    def cancel(self, tasks: Sequence[Task]) -> None:
        """Tasks still on the client end CANCELED at once; the others' agents are told to cancel them."""
        def cancel() -> None:  # on the I/O thread: no task changes hands between looking and acting
            by_pilot: dict[str, list[str]] = {}
            local = []
            for task in tasks:
                if task.state is TaskState.NEW:
                    local.append(task.uid)
                elif not task.state.is_final and task.pilot:
                    by_pilot.setdefault(task.pilot, []).append(task.uid)
            self.end_tasks(local, TaskState.CANCELED, "canceled before it was sent to a pilot")
            for pilot_uid, uids in by_pilot.items():
                self.send(self.records[pilot_uid], protocol.encode(protocol.CancelTasks(uids)))
        self.call(cancel)

    # -- pilots --------------------------------------------------------------------------------------
    def launch_pilot(self, session: Session, description: PilotDescription, number: Callable[[], str]) -> Pilot:
        """Submit a pilot that ``Session.submit_pilot`` checked (the resource config's fit, then the batch job)."""
        resource = self.resource(description.resource)
        check_fits(description, resource)
        session.open()
        return submit_pilot(session, self, description, resource, number)

    @contextlib.contextmanager
    def new_pilot(self) -> Iterator[Callable[[], str]]:
        """While a pilot is submitted: a wait for tasks counts on it; gives the function that numbers it."""
        def number() -> str:
            with self.lock:
                return f"pilot.{next(self.pilot_numbers):04d}"
        with self.changed:
            self.pilots_submitting += 1
        try:
            yield number
        finally:
            with self.changed:
                self.pilots_submitting -= 1
                self.changed.notify_all()  # a wait that counted on this pilot looks again

    def register_pilot(self, record: PilotRecord) -> None:
        """A pilot about to be submitted: followed from now on, its row journaled."""
        def register() -> None:
            with self.lock:
                self.pilots[record.pilot.uid] = record.pilot
                self.heartbeat_interval = min(self.heartbeat_interval, record.pilot.resource.heartbeat_interval)
            self.records[record.pilot.uid] = record
            self.lifecycle.save_pilot(record)
        self.call(register)

    def job_events(self, record: PilotRecord) -> Callable[[JobEvent], None]:
        """The callback through which a batch adapter reports the pilot's job (from psij's thread)."""
        def report(event: JobEvent) -> None:
            self.post(lambda: self.lifecycle.on_job_event(record, event))
        return report

    def pilot_submitted(self, record: PilotRecord, native_id: str) -> None:
        def submitted() -> None:
            record.pilot.native_id = native_id
            if record.cancel_requested:  # canceled while the batch system took the job
                self.lifecycle.cancel_job(record)
            if not self.lifecycle.set_pilot_state(record, PilotState.SUBMITTED, "client", time.time()):
                self.lifecycle.save_pilot(record)  # psij reported the job first: journal its batch id all the same
        self.call(submitted)

    def pilot_refused(self, record: PilotRecord, why: str) -> None:
        """The batch system refused the pilot's job: it ends FAILED with ``why``."""
        def refused() -> None:
            record.pilot.failure = why
            self.lifecycle.end_pilot(record, PilotState.FAILED, why)
        self.call(refused)

    def cancel_pilot(self, uid: str, reason: str) -> None:
        self.call(lambda: self.lifecycle.stop_pilot(self.records[uid], reason, cancel=True))

    def endpoint_for(self, address: str) -> str:
        """Bind the agents' socket for ``address`` (once) and return the address agents connect to.

        ``address`` is an IP of this host, or "hostname": bind every interface, advertise this host's name.
        """
        def bind() -> str:
            assert self.router is not None
            if address not in self.endpoints:
                self.endpoints[address] = bind_and_advertise(self.router, address)
            return self.endpoints[address]
        return self.call(bind)

    # -- the end -------------------------------------------------------------------------------------
    def shut_down(self, reason: str) -> None:
        """Tasks waiting on the client end CANCELED; ACTIVE pilots' agents are told to stop, the others' jobs are
        canceled."""
        def shut_down() -> None:
            self.end_tasks([t.uid for t in self.pending], TaskState.CANCELED, reason)
            self.pending.clear()
            for record in self.records.values():
                active = record.pilot.state is PilotState.ACTIVE
                self.lifecycle.stop_pilot(record, reason, cancel=not active)
        self.call(shut_down)

    def cancel_pilots(self, reason: str) -> None:
        """Every pilot not final: its agent is told to stop (tasks CANCELED), or its job canceled; it ends CANCELED."""
        def cancel() -> None:
            for record in self.records.values():
                if not record.pilot.state.is_final and not record.ending:
                    self.lifecycle.stop_pilot(record, reason, cancel=True)
        self.call(cancel)

    def give_up(self, reason: str) -> None:
        """Pilots that did not end: their jobs canceled, CANCELED with ``reason`` (output staging not waited for)."""
        def give_up() -> None:
            for record in self.records.values():
                if not record.pilot.state.is_final:
                    self.lifecycle.cancel_job(record)
                    self.lifecycle.end_pilot(record, PilotState.CANCELED, reason)
                if not record.pilot.state.is_final:  # its output staging still runs: do not wait for it
                    self.lifecycle.set_pilot_state(record, PilotState.CANCELED, "client", time.time())
        self.call(give_up)

    def end_unfinished(self, reason: str) -> None:
        self.call(lambda: self.end_tasks(list(self.tasks), TaskState.CANCELED, reason))

    def flush_profile(self) -> None:
        """What the I/O thread holds goes to the journal's queue."""
        self.call(self.handle_journal)

    # -- restore (the work is reconnect's, on this thread) -------------------------------------------
    def restore_unsent(self, wires: dict[str, dict[str, Any]], cancel_reason: str | None) -> None:
        self.call(lambda: reconnect.restore_unsent(self, wires, cancel_reason))

    def follow_again(self, wires: dict[str, dict[str, Any]], marks: dict[str, float],
                     cancel_reason: str | None) -> None:
        reconnect.settle_pilots(self, wires, marks, cancel_reason)

    def requeue_interrupted(self, wires: dict[str, dict[str, Any]]) -> int:
        return int(self.call(lambda: reconnect.requeue_interrupted(self, wires)))

    def waiting_for_a_pilot(self) -> int:
        """Tasks waiting on the client while no pilot that could run them is left."""
        def waiting() -> int:
            live = any(not r.pilot.state.is_final and not r.ending for r in self.records.values())
            return 0 if live else len(self.pending)
        return int(self.call(waiting))

    def release_held(self) -> None:
        """The restore is done: tasks waiting on the client fail if no pilot is left to run them."""
        def release() -> None:
            self.hold_pending = False
            self.fail_pending_without_pilots("every pilot of the session has ended")
        self.call(release)

