"""The ``radical`` backend's engine: the session's command API (see :mod:`scalems_like.client.engine`) carried out
by RADICAL-Pilot's PilotManager, TaskManager and raptor instead of our agents.

It is the native :class:`~scalems_like.client.engine.Engine` (its state, I/O thread, journal, task handles and
their one update path, :meth:`~scalems_like.client.task_updates.TaskUpdates.apply`) with the parts that talk to
agents replaced: pilots are submitted to RP's PilotManager (RP's pilot states are posted to the I/O thread and
become ours), tasks waiting on the client go to RP when a pilot is ACTIVE (executables through the TaskManager,
functions through one raptor master per pilot, started with the pilot's first function task), and RP's task
callbacks are posted to the I/O thread as updates, so that Task handles, futures, callbacks, apps and the cache
behave as with the native backend. Retries are the client's: a failed attempt with retries left is sent again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import cloudpickle

from scalems_like import paths
from scalems_like.adapters import BatchAdapter, JobEvent, PilotJob
from scalems_like.backends.radical import functions, mapping
from scalems_like.backends.radical.runtime import CLOSE_LIMIT, Runtime, within
from scalems_like.client.engine import Engine
from scalems_like.client.pilot import NodeReadiness, Pilot
from scalems_like.client.pilot_lifecycle import PilotRecord
from scalems_like.client.remote_staging import RemoteStaging
from scalems_like.client.task import Task, TaskOwner
from scalems_like.descriptions import PilotDescription, TaskDescription
from scalems_like.errors import ScalemsError, SubmitError, TaskFailed
from scalems_like.overlay.execution import exit_reason
from scalems_like.resources import ResourceConfig
from scalems_like.states import PilotState, TaskState

if TYPE_CHECKING:
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.radical")

_TASK_STATES = {"AGENT_EXECUTING": TaskState.RUNNING, "DONE": TaskState.DONE, "FAILED": TaskState.FAILED,
                "CANCELED": TaskState.CANCELED}
"""RP's task states that are ours too (any other RP state past the client is QUEUED)."""
_PILOT_STATES = {"PMGR_LAUNCHING": PilotState.SUBMITTED, "PMGR_ACTIVE_PENDING": PilotState.BOOTSTRAPPING,
                 "PMGR_ACTIVE": PilotState.ACTIVE}


class RadicalPilots(BatchAdapter):
    """RP's PilotManager seen as the batch adapter of a pilot record (the lifecycle cancels pilots through it)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def submit(self, job: PilotJob, on_event: Callable[[JobEvent], object]) -> str:
        raise NotImplementedError("the radical engine submits pilots through RADICAL-Pilot's PilotManager")

    def attach(self, native_id: str, on_event: Callable[[JobEvent], object]) -> bool:
        return False  # (RP cannot reattach: refused before it comes to this)

    def cancel(self, native_id: str) -> None:
        self.runtime.pilots.cancel_pilots([native_id])


class RadicalEngine(Engine):
    """The engine of a ``Session(backend="radical")`` (see the module)."""

    backend = "radical"

    def __init__(self, uid: str) -> None:
        super().__init__(uid)
        self.runtime = Runtime(paths.user_data_dir() / "radical" / uid)
        self.start_lock = threading.Lock()
        self.started = False
        self.rp_pilots: dict[str, Any] = {}
        """RP's pilot handle of each of our pilots, by our uid."""
        self.masters: dict[str, Any] = {}
        """The raptor master of each pilot that ran a function task."""
        self.by_rp_uid: dict[str, str] = {}
        """Our task uid of each RP task uid (one RP task per attempt)."""
        self.closing: threading.Thread | None = None

    # -- pilots --------------------------------------------------------------------------------------
    def launch_pilot(self, session: Session, description: PilotDescription, number: Callable[[], str]) -> Pilot:
        mapping.check_pilot(description)
        session.open()
        session.record_info("backend", self.backend)
        with self.start_lock:  # (the first pilot starts RP: ~30 s, within a time limit)
            if not self.started:
                self.runtime.start(self.on_rp_pilot, self.on_rp_task)
                self.started = True
        uid = number()
        resource = ResourceConfig(name=description.resource, description="a RADICAL-Pilot resource")
        pilot = Pilot(uid, description, resource, self.runtime.directory, session)
        record = PilotRecord(pilot, RadicalPilots(self.runtime))
        self.register_pilot(record)
        rp = self.runtime.rp
        fields = {**mapping.pilot_fields(description), "uid": uid, "exit_on_error": False}
        try:
            rp_pilot = within(60, f"submitting pilot {uid} to RADICAL-Pilot", self.runtime.logs,
                              lambda: self.runtime.pilots.submit_pilots(rp.PilotDescription(fields)))
            self.runtime.tasks.add_pilots(rp_pilot)
        except Exception as error:
            self.pilot_refused(record, str(error))
            raise SubmitError(f"pilot {uid}: {error}") from error
        self.call(lambda: self.rp_pilots.__setitem__(uid, rp_pilot))
        pilot.sandbox = Path(urlparse(str(rp_pilot.pilot_sandbox)).path)
        self.pilot_submitted(record, rp_pilot.uid)
        log.info("pilot %s submitted to RADICAL-Pilot on %s (RP's logs: %s)", uid, description.resource,
                 self.runtime.logs())
        return pilot

    def on_rp_pilot(self, rp_pilot: Any, state: str) -> None:
        """(RP's thread) a pilot's state: posted to the I/O thread."""
        failure = None
        if state == "FAILED":
            failure = (f"RADICAL-Pilot says the pilot failed: {getattr(rp_pilot, 'stderr', None) or 'no message'}"
                       f"; its logs: {urlparse(str(rp_pilot.pilot_sandbox)).path} and {self.runtime.logs()}")
        self.post(lambda: self.rp_pilot_state(rp_pilot.uid, state, failure))

    def rp_pilot_state(self, uid: str, state: str, failure: str | None) -> None:
        record = self.records.get(uid)
        if record is None or record.pilot.state.is_final or record.ending:
            return
        if state in _PILOT_STATES:
            ours = _PILOT_STATES[state]
            if ours is PilotState.ACTIVE:
                cores = record.pilot.description.cores or 1
                record.pilot.readiness = {"rp": NodeReadiness(record.pilot.description.resource, cores, cores, None)}
            self.lifecycle.set_pilot_state(record, ours, "radical", time.time())
        elif state == "FAILED":
            self.lifecycle.fail_pilot(record, failure or "RADICAL-Pilot says the pilot failed")
        elif state == "CANCELED" and (record.cancel_requested or self.closing is None):
            self.lifecycle.end_pilot(record, PilotState.CANCELED, record.cancel_reason if record.cancel_requested
                                     else "RADICAL-Pilot canceled the pilot")
        elif state == "CANCELED":  # (RP cancels its pilots when its session closes: ours end DONE then)
            self.end_closed(record, "session closed")
        elif state == "DONE":
            self.lifecycle.end_pilot(record, PilotState.DONE, "RADICAL-Pilot ended the pilot")

    def cancel_pilot(self, uid: str, reason: str) -> None:
        def cancel() -> None:
            record = self.records[uid]
            record.cancel_reason = reason
            self.lifecycle.cancel_job(record)  # (RadicalPilots.cancel, in the background)
        self.call(cancel)

    def cancel_pilots(self, reason: str) -> None:
        for record in list(self.records.values()):
            if not record.pilot.state.is_final and not record.ending:
                self.cancel_pilot(record.pilot.uid, reason)

    # -- tasks ---------------------------------------------------------------------------------------
    def submit(self, descriptions: Sequence[TaskDescription], wires: Sequence[dict[str, Any]],
               owner: TaskOwner, remote: RemoteStaging | None = None) -> list[Task]:
        for index, description in enumerate(descriptions):
            mapping.check_task(description, f"submit_tasks: item {index}")
        return super().submit(descriptions, wires, owner, remote)

    def handle_dispatch(self) -> None:
        active = [r for r in self.records.values()
                  if r.pilot.state is PilotState.ACTIVE and not r.cancel_requested and not r.ending]
        if not self.pending or not active:
            return
        record = min(active, key=lambda r: len(r.outstanding))
        now, tasks = time.time(), []
        with self.lock:
            while self.pending:
                task = self.pending.popleft()
                self.wire.pop(task.uid, None)
                if self.transition(task, TaskState.SUBMITTED, now, None, pilot=record.pilot.uid,
                                   sandbox=f"{record.pilot.sandbox}/{task.uid}.{task.attempt}"):
                    record.outstanding.add(task.uid)
                    tasks.append(task)
        self.send_to_rp(record, tasks)

    def send_to_rp(self, record: PilotRecord, tasks: list[Task]) -> None:
        """Hand ``tasks`` (SUBMITTED to ``record``'s pilot) to RP; one that RP refuses ends FAILED saying why."""
        rp, executables, calls = self.runtime.rp, [], []
        for task in tasks:
            rp_uid = f"{task.uid}.{task.attempt}"
            self.by_rp_uid[rp_uid] = task.uid
            if task.description.function is None:
                executables.append(rp.TaskDescription(mapping.task_fields(task.description, rp_uid)))
            else:
                calls.append(rp.TaskDescription(self.function_fields(task, rp_uid)))
        try:
            if executables:
                self.runtime.tasks.submit_tasks(executables)
            if calls:
                self.master_of(record).submit_tasks(calls)
        except Exception as error:
            log.exception("RADICAL-Pilot refused tasks")
            self.end_tasks([task.uid for task in tasks], TaskState.FAILED, f"RADICAL-Pilot refused it: {error}")

    def function_fields(self, task: Task, rp_uid: str) -> dict[str, Any]:
        description = task.description
        assert description.function is not None
        payload = functions.payload_of(description.function, description.args, description.kwargs)
        fields: dict[str, Any] = {"uid": rp_uid, "name": description.name or task.uid,
                                  "mode": self.runtime.rp.TASK_FUNCTION, "environment": dict(description.environment),
                                  "function": self.runtime.rp.PythonTask(functions.portable_caller(), args=(payload,),
                                                                         kwargs={})}
        if description.timeout is not None:
            fields["timeout"] = description.timeout
        return fields

    def master_of(self, record: PilotRecord) -> Any:
        """The pilot's raptor master (and its worker), started with its first function task."""
        uid = record.pilot.uid
        if uid not in self.masters:
            rp = self.runtime.rp
            master = self.rp_pilots[uid].submit_raptors([rp.TaskDescription({"mode": rp.RAPTOR_MASTER})])[0]
            cores = max(1, (record.pilot.description.cores or 2) - 1)
            master.submit_workers([rp.TaskDescription({"mode": rp.RAPTOR_WORKER, "cores_per_rank": cores,
                                                       "raptor_class": "ScalemsWorker",
                                                       "raptor_file": str(Path(__file__).with_name("worker.py"))})])
            self.masters[uid] = master
        return self.masters[uid]

    def on_rp_task(self, rp_task: Any, state: str) -> None:
        """(RP's thread) a task's state: read now, posted to the I/O thread as an update."""
        uid = self.by_rp_uid.get(rp_task.uid)
        if uid is None or "STAGING_OUTPUT" in state:
            return  # a raptor master or worker; or RP staging a task's outputs (RUNNING still, to us)
        update: dict[str, Any] = {"uid": uid, "state": _TASK_STATES.get(state, TaskState.QUEUED).value,
                                  "time": time.time(), "host": "radical"}
        if state in ("DONE", "FAILED", "CANCELED"):
            update.update(self.final_fields(rp_task, state))
        self.post(lambda: self.rp_task_update(update))

    def final_fields(self, rp_task: Any, state: str) -> dict[str, Any]:
        if state == "CANCELED":
            return {"reason": "canceled (RADICAL-Pilot canceled it)"}
        if rp_task.description.get("mode") != self.runtime.rp.TASK_FUNCTION:
            fields: dict[str, Any] = {"exit_code": rp_task.exit_code}
            if state == "FAILED":
                code = rp_task.exit_code
                fields["reason"] = exit_reason(code) if code else f"RADICAL-Pilot: {rp_task.exception or 'failed'}"
            return fields
        outcome = functions.outcome_update(rp_task.return_value) if state == "DONE" else None
        if outcome is not None:
            return outcome
        reason = f"RADICAL-Pilot: {rp_task.exception or 'the function task failed'}"
        # RP gives the exception as text: a TaskFailed, with RP's traceback text as its remote_traceback
        return {"state": TaskState.FAILED.value, "reason": reason, "traceback": rp_task.exception_detail or reason,
                "exception": cloudpickle.dumps(TaskFailed(rp_task.uid, TaskState.FAILED.value, reason))}

    def rp_task_update(self, update: dict[str, Any]) -> None:
        task = self.tasks[update["uid"]]
        record = self.records.get(task.pilot or "")
        if record is None:
            return
        if update["state"] == TaskState.FAILED.value and task.attempt < task.description.retries:
            attempt = task.attempt + 1  # (its new RP task has its own sandbox)
            update = {**update, "state": TaskState.QUEUED.value, "attempt": attempt, "pilot": record.pilot.uid,
                      "sandbox": f"{record.pilot.sandbox}/{task.uid}.{attempt}",
                      "reason": f"attempt {attempt} failed ({update.get('reason')}); retried"}
            with self.lock:
                state = self.apply(task, update)
                self.changed.notify_all()
            if state is not None:
                self.send_to_rp(record, [task])
            return
        self.apply_updates(record, [update])

    def cancel(self, tasks: Sequence[Task]) -> None:
        def cancel() -> None:
            local = [task.uid for task in tasks if task.state is TaskState.NEW]
            self.end_tasks(local, TaskState.CANCELED, "canceled before it was sent to a pilot")
            sent = [f"{task.uid}.{task.attempt}" for task in tasks if not task.state.is_final and task.pilot]
            if sent:
                self.in_background(lambda: self.runtime.tasks.cancel_tasks(sent))
        self.call(cancel)

    # -- what agents did: nothing to do here ---------------------------------------------------------
    def send(self, record: PilotRecord, data: bytes) -> None:
        """(no agents: RP's pilots hear nothing from this socket)"""

    def handle_timers(self) -> None:
        """(RP follows its own pilots: no heartbeats, no silent agents)"""

    def handle_bootstrap_feedback(self) -> None:
        """(RP's pilots run RP's bootstrap, which reports no scalems_like events)"""

    # -- the end -------------------------------------------------------------------------------------
    def shut_down(self, reason: str) -> None:
        """Tasks waiting on the client end CANCELED; RP's session closes (its pilots end) in the background, within
        a time limit; then the pilots that did not end otherwise end DONE."""
        def shut_down() -> None:
            self.end_tasks([t.uid for t in self.pending], TaskState.CANCELED, reason)
            self.pending.clear()
            if self.closing is None and self.started:
                self.closing = threading.Thread(target=self.close_runtime, args=(reason,), name="radical: close")
                self.closing.start()
        self.call(shut_down)

    def close_runtime(self, reason: str) -> None:
        self.runtime.close()

        def ended() -> None:
            for record in self.records.values():
                self.end_closed(record, reason)
        self.post(ended)

    def end_closed(self, record: PilotRecord, reason: str) -> None:
        """A pilot ended by the session's close: its tasks end CANCELED (as a native agent's), it ends DONE (or
        CANCELED if it was canceled)."""
        if record.pilot.state.is_final or record.ending:
            return
        self.end_tasks(list(record.outstanding), TaskState.CANCELED, reason)
        record.outstanding.clear()
        state = PilotState.CANCELED if record.cancel_requested else PilotState.DONE
        self.lifecycle.end_pilot(record, state, record.cancel_reason if record.cancel_requested else reason)

    def stop(self) -> None:
        """Stop the I/O thread; RP's session is closed first (within a time limit) if it was not."""
        if self.closing is not None:
            self.closing.join(CLOSE_LIMIT + 5)
        elif self.started:
            self.runtime.close()
        super().stop()

    def refuse(self, what: str) -> ScalemsError:
        return ScalemsError(f"backend {self.backend!r}: {what}: RADICAL-Pilot cannot reattach to its pilots")
