"""The master's steps against real ZeroMQ sockets: a client ROUTER and node managers' DEALERs played by the test
(one manager per worker, so that each worker's messages can be read apart: :class:`WorkerEnd`)."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from scalems_like import protocol
from scalems_like.agent.config import AgentConfig
from scalems_like.agent.nodes import Node
from scalems_like.overlay.client_link import ClientLink
from scalems_like.overlay.master import Master
from scalems_like.protocol import curve
from scalems_like.protocol.curve import SessionKeys
from scalems_like.states import TaskState

PATIENCE_MS = 10_000


class WorkerEnd:
    """A worker as the master sees it: its messages travel through its node manager's DEALER (``manager``), in
    routed ``[worker, message]`` frames."""

    def __init__(self, manager: zmq.Socket[bytes], uid: str) -> None:
        self.manager = manager
        self.uid = uid

    def send(self, data: bytes, flags: int = 0) -> None:
        self.manager.send_multipart([self.uid.encode(), data], flags)

    def say_hello(self, node: str) -> None:
        """The manager says this worker is ready on ``node``."""
        self.manager.send_multipart([b"", protocol.encode(protocol.NodeHello(node, "host", 1, [[self.uid, 1]]))])

    def poll(self, timeout: int) -> int:
        return self.manager.poll(timeout)

    def recv(self) -> bytes:
        """The next message for this worker (or for its manager)."""
        frames = self.manager.recv_multipart()
        assert len(frames) == 2 and frames[0] in (b"", self.uid.encode()), frames
        return frames[1]

    def setsockopt(self, option: int, value: int) -> None:
        self.manager.setsockopt(option, value)

    def close(self) -> None:
        self.manager.close()


@dataclasses.dataclass
class Harness:
    master: Master
    context: zmq.Context[zmq.Socket[bytes]]
    client: zmq.Socket[bytes]
    """The ROUTER the master's client socket connects to."""
    worker_address: str
    keys: SessionKeys
    dealers: list[zmq.Socket[bytes]] = dataclasses.field(default_factory=list)

    def dealer(self, uid: str) -> WorkerEnd:
        """Worker ``uid`` behind a node manager ``m-UID`` connected to the master's socket (closed at the end of the
        test); it has not said hello."""
        dealer = self.context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt_string(zmq.IDENTITY, f"m-{uid}")
        curve.connect_as(dealer, self.keys.agent_public, self.keys.agent_public, self.keys.agent_secret)
        dealer.connect(self.worker_address)
        self.dealers.append(dealer)
        return WorkerEnd(dealer, uid)

    def worker(self, uid: str, node: str = "n1") -> WorkerEnd:
        """A worker its manager said is ready, once the master has heard it."""
        end = self.dealer(uid)
        end.say_hello(node)
        self.pump()
        assert uid in self.master.scheduler.workers
        return end

    def pump(self) -> None:
        """Wait for node managers' messages and let the master handle them."""
        assert self.master.workers.poll(PATIENCE_MS), "no message from any node manager"
        self.master.handle_manager_messages()

    def client_messages(self, until: type[protocol.Message]) -> list[protocol.Message]:
        """What the master sent its client, up to the first message of type ``until``."""
        messages: list[protocol.Message] = []
        while not messages or not isinstance(messages[-1], until):
            assert self.client.poll(PATIENCE_MS), f"the client got no {until.__name__}"
            _identity, data = self.client.recv_multipart()
            messages.append(protocol.decode(data))
        return messages


def received(dealer: WorkerEnd) -> protocol.Message:
    """The next message for the worker: its tasks of a NodeTasks as the RunTasks its manager would send it."""
    assert dealer.poll(PATIENCE_MS), "the worker got nothing"
    message = protocol.decode(dealer.recv())
    if isinstance(message, protocol.NodeTasks):
        assert [worker for worker, _tasks in message.assignments] == [dealer.uid], message
        assert message.task_root.endswith("/tasks"), message.task_root
        return protocol.RunTasks(message.assignments[0][1])
    return message


def received_run(dealer: WorkerEnd) -> list[dict[str, Any]]:
    message = received(dealer)
    assert isinstance(message, protocol.RunTasks)
    return message.tasks


def task(uid: str, retries: int = 0, cores: int = 1) -> dict[str, Any]:
    return {"uid": uid, "kind": "executable", "cores": cores, "gpus": 0, "ranks": 1, "retries": retries}


def update(uid: str, state: str, worker: str, attempt: int) -> dict[str, Any]:
    return {"uid": uid, "state": state, "time": 1.0, "host": "n1", "worker": worker, "attempt": attempt}


def open_master(tmp_path: Path, nodes: list[Node], per_node: int, width: int,
                context: zmq.Context[zmq.Socket[bytes]]) -> tuple[Master, zmq.Socket[bytes], SessionKeys]:
    """A master whose client is a CURVE ROUTER of ``context`` (which must have an authenticator)."""
    keys = SessionKeys.generate()
    keys.for_agent.write(tmp_path)
    client = context.socket(zmq.ROUTER)
    client.setsockopt(zmq.LINGER, 0)
    curve.serve(client, keys.client_public, keys.client_secret)
    port = client.bind_to_random_port("tcp://127.0.0.1")
    config = AgentConfig(pilot_uid="pilot.test", session_uid="session.test", pilot_sandbox=str(tmp_path),
                         client_address=f"tcp://127.0.0.1:{port}", runtime=300)
    return Master.open(config, nodes, per_node, width), client, keys


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with opened_harness(tmp_path, [Node("n1", 2, 0)], 2) as opened:
        yield opened


@contextlib.contextmanager
def opened_harness(tmp_path: Path, nodes: list[Node], per_node: int) -> Iterator[Harness]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    master, client, keys = open_master(tmp_path, nodes, per_node, 1, context)
    authenticator = curve.start_authenticator(context, {keys.agent_public}, "the test's client")
    address = master.bind_workers()
    master.connect_client()
    opened = Harness(master, context, client, address, keys)
    yield opened
    for dealer in opened.dealers:
        dealer.close()
    client.close()
    if not master.context.closed:
        if master.link.socket is not None:
            master.link.socket.setsockopt(zmq.LINGER, 0)
        master.close()
    authenticator.stop()
    context.destroy(linger=0)


def states(harness: Harness, uid: str) -> list[tuple[str, str | None]]:
    harness.master.handle_flush()
    return [(u["state"], u.get("reason")) for message in harness.client_messages(until=protocol.TaskUpdates)
            if isinstance(message, protocol.TaskUpdates) for u in message.updates if u["uid"] == uid]


# -- 22: no I/O in the constructor; 7: the width is known from the start -------------------------------------------
def test_master_constructor_only_holds_what_open_made(tmp_path: Path) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        config = AgentConfig(pilot_uid="p", session_uid="s", client_address="tcp://127.0.0.1:1",
                             pilot_sandbox=str(tmp_path), runtime=60, insecure=True)
        link, workers = ClientLink(config, None), context.socket(zmq.ROUTER)
        master = Master(config, [Node("n1", 4, 0)], 2, 2, host="given-host", context=context, link=link,
                        workers=workers, keys=None)
        assert master.host == "given-host" and master.link is link and master.workers is workers
        assert link.socket is None and not list(tmp_path.iterdir())  # nothing connected, nothing written
        opened = Master.open(config, [Node("n1", 4, 0)], 2, 2)
        assert opened.host == socket.gethostname() and opened.workers.type == zmq.ROUTER
        assert opened.link.socket is None
        opened.close()
    finally:
        context.destroy(linger=0)


def test_accepted_tasks_share_their_common_strings_and_keep_their_own(harness: Harness) -> None:
    """Decoded from one SubmitTasks, two tasks of the same executable hold one copy of what they share."""
    tasks = [{**task(uid), "executable": "/bin/" + "true", "stdout": "out", "stderr": "err", "name": uid,
              "arguments": []} for uid in ("a", "b")]
    first, second = protocol.decode(protocol.encode(protocol.SubmitTasks(tasks))).tasks  # type: ignore[attr-defined]
    assert first["executable"] is not second["executable"]
    harness.master.accept([first, second])
    assert all(first[key] is second[key] for key in ("kind", "executable", "stdout", "stderr", "arguments"))
    assert first["name"] == "a" and second["name"] == "b"
    sent = protocol.decode(protocol.encode(protocol.RunTasks([first])))  # (what a worker gets: the same task)
    assert sent == protocol.RunTasks([{**tasks[0], "attempt": 0}])


def test_width_and_capacity_are_known_before_any_worker_says_hello(tmp_path: Path) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        # a 5-core node with 2 workers of 2 cores: 4 cores to run tasks on
        master, _client, _keys = open_master(tmp_path, [Node("n1", 5, 0)], 2, 2, context)
        assert master.scheduler.width == 2
        master.accept([task("four", cores=4), task("five", cores=5)])
        assert set(master.tasks) == {"four"}
        (failed,) = [u for u in master.outbox if u["uid"] == "five"]
        assert failed["state"] == "FAILED" and failed["reason"] == (
            "needs 5 cores and 0 GPUs on one node; the largest node of this pilot offers 4 cores and 0 GPUs")
        master.close()
    finally:
        context.destroy(linger=0)


# -- 8: late updates from a lost worker, or about an earlier attempt ----------------------------------------------
def test_late_updates_of_a_lost_worker_are_dropped_and_it_is_told_to_stop(harness: Harness) -> None:
    master = harness.master
    first, second = harness.worker("w1"), harness.worker("w2")
    master.accept([task("t", retries=1)])
    master.handle_schedule()
    assert isinstance(message := received(first), protocol.RunTasks) and message.tasks[0]["uid"] == "t"
    master.lose_worker("w1", "silent for 11 s")
    master.handle_schedule()
    assert isinstance(message := received(second), protocol.RunTasks) and message.tasks[0]["attempt"] == 1

    first.send(protocol.encode(protocol.TaskUpdates([update("t", "DONE", "w1", 0)])))
    harness.pump()
    assert isinstance(received(first), protocol.Shutdown)
    assert "t" in master.tasks and list(master.scheduler.workers["w2"].queue) == ["t"]
    assert "w1" in master.lost_workers and "w1" not in master.scheduler.workers

    second.send(protocol.encode(protocol.TaskUpdates([update("t", "FAILED", "w2", 0)])))  # an earlier attempt's
    harness.pump()
    assert "t" in master.tasks and list(master.scheduler.workers["w2"].queue) == ["t"]

    second.send(protocol.encode(protocol.TaskUpdates([update("t", "DONE", "w2", 1)])))
    harness.pump()
    assert "t" not in master.tasks and not master.scheduler.workers["w2"].queue
    assert [state for state, _ in states(harness, "t")] == ["QUEUED", "QUEUED", "DONE"]


def test_a_lost_worker_that_says_hello_again_is_not_taken_back(harness: Harness) -> None:
    lost = harness.worker("w1")
    harness.master.lose_worker("w1", "silent for 11 s")
    lost.say_hello("n1")
    harness.pump()
    assert isinstance(received(lost), protocol.Shutdown)
    assert "w1" not in harness.master.scheduler.workers


def test_updates_from_a_worker_that_never_said_hello_are_dropped(harness: Harness) -> None:
    harness.worker("w1")
    harness.master.accept([task("t")])
    harness.master.handle_schedule()
    stranger = harness.dealer("stranger")
    stranger.send(protocol.encode(protocol.TaskUpdates([update("t", "DONE", "stranger", 0)])))
    harness.pump()
    assert "t" in harness.master.tasks and "stranger" not in harness.master.scheduler.workers


# -- 9: sending to a node manager whose connection is gone: its node is lost ------------------------------------------
def gone(harness: Harness, dealer: WorkerEnd) -> None:
    """Close a node manager's socket and wait until the master's ROUTER saw the disconnection."""
    monitor = harness.master.workers.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        dealer.close()
        assert monitor.poll(PATIENCE_MS), "the master's socket never saw the worker go"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    finally:
        harness.master.workers.disable_monitor()
        monitor.close()


LOST_N1 = "node n1 is out of the schedule: node lost: the connection of its node manager m-w1 is gone (unreachable)"


def test_a_task_sent_to_a_gone_node_manager_is_retried_on_another_node(tmp_path: Path) -> None:
    with opened_harness(tmp_path, [Node("n1", 1, 0), Node("n2", 1, 0)], 1) as harness:
        doomed, other = harness.worker("w1", "n1"), harness.worker("w2", "n2")
        gone(harness, doomed)
        harness.master.accept([task("t", retries=1)])
        harness.master.handle_schedule()  # t goes to w1 first: EHOSTUNREACH
        assert "w1" not in harness.master.scheduler.workers and harness.master.health.is_out("n1")
        harness.master.handle_schedule()
        assert isinstance(message := received(other), protocol.RunTasks)
        assert message.tasks[0]["uid"] == "t" and message.tasks[0]["attempt"] == 1
        (_queued, retried) = states(harness, "t")
        assert retried == ("QUEUED", f"retry 1 of 1 after: worker w1 lost: {LOST_N1}")
        assert harness.master.stop_reason is None  # the pilot goes on with n2


def test_a_task_sent_to_a_gone_worker_without_retries_fails_and_heartbeats_go_on(harness: Harness) -> None:
    doomed = harness.worker("w1")
    gone(harness, doomed)
    harness.master.accept([task("t")])
    harness.master.handle_schedule()
    harness.master.last_heartbeat = harness.master.last_node_heartbeat = 0.0
    harness.master.handle_heartbeats()
    assert states(harness, "t")[-1] == ("FAILED", f"worker w1 lost: {LOST_N1}")
    assert "t" not in harness.master.tasks and "w1" in harness.master.lost_workers


# -- 20: the stop's cause decides how tasks end, not its wording --------------------------------------------------
def stop_and_read(harness: Harness) -> tuple[list[tuple[str, str, str, str | None]], protocol.AgentStopping]:
    """Stop the master; returns the final task updates it sent (uid, state, reason, interrupted) and its last
    word."""
    harness.master.stop_everything()
    messages = harness.client_messages(until=protocol.AgentStopping)
    updates = [(u["uid"], u["state"], u["reason"], u.get("interrupted")) for m in messages
               if isinstance(m, protocol.TaskUpdates)
               for u in m.updates if u["state"] != "QUEUED"]
    (stop,) = [m for m in messages if isinstance(m, protocol.AgentStopping)]
    return updates, stop


def test_a_client_shutdown_cancels_the_queued_tasks(harness: Harness) -> None:
    harness.master.accept([task("t")])  # no worker: t stays queued
    harness.client_messages(until=protocol.Hello)  # the client's ROUTER knows the agent: it can answer
    harness.client.send_multipart([b"pilot.test", protocol.encode(protocol.Shutdown("session closed"))])
    assert harness.master.link.socket is not None and harness.master.link.socket.poll(PATIENCE_MS)
    harness.master.handle_client_messages()
    assert harness.master.stop_reason is not None
    assert harness.master.stop_reason.tasks_end is TaskState.CANCELED
    updates, stop = stop_and_read(harness)
    reason = "shut down by the client: session closed"
    assert updates == [("t", "CANCELED", f"{reason} before the task started", None)]  # not for a resume
    assert (stop.final_state, stop.reason) == ("DONE", reason)


def test_a_failure_worded_like_a_client_shutdown_still_fails_the_tasks(harness: Harness) -> None:
    harness.master.accept([task("t")])
    reason = "shut down by the client's batch system (node failure)"
    harness.master.request_stop("FAILED", reason)
    updates, stop = stop_and_read(harness)
    assert updates == [("t", "FAILED", f"{reason} before the task started", "queued")]
    assert (stop.final_state, stop.reason) == ("FAILED", reason)


def test_tasks_stopped_by_the_runtime_end_are_marked_interrupted_for_a_resume(harness: Harness) -> None:
    """Queued tasks say "queued", tasks a worker was running say "running" (a client shutdown marks none)."""
    worker = harness.worker("w1")  # of the 2 workers started, only w1 said hello
    harness.master.accept([task("ran"), task("waited", cores=2)])  # "waited" needs both workers
    harness.master.handle_schedule()
    assert [t["uid"] for t in received_run(worker)] == ["ran"]
    worker.send(protocol.encode(protocol.TaskUpdates([update("ran", "RUNNING", "w1", 0)])))
    harness.pump()
    harness.master.request_stop("DONE", "pilot runtime of 60 s ended")
    harness.master.stop_everything()
    messages = harness.client_messages(until=protocol.AgentStopping)
    marks = {u["uid"]: (u["state"], u.get("interrupted")) for m in messages if isinstance(m, protocol.TaskUpdates)
             for u in m.updates if u["state"] != "QUEUED"}
    assert marks == {"waited": ("FAILED", "queued"), "ran": ("FAILED", "running")}
    stopped = Path(harness.master.config.pilot_sandbox) / "agent.stopped"
    assert stopped.exists() and "runtime of 60 s ended" in stopped.read_text()


# -- a flood from a (keyed) peer is pushed back, not queued without bound ------------------------------------------
def test_a_flood_of_worker_messages_is_pushed_back_to_the_sender(harness: Harness) -> None:
    """The master reads nothing while a worker sends as fast as it can: once the master's receive queue, the TCP
    buffers and the worker's own queue are full, the worker's send would block (zmq.Again without waiting)."""
    flooder = harness.dealer("w-flood")
    flooder.setsockopt(zmq.SNDHWM, 100)
    beat = protocol.encode(protocol.Heartbeat(1.0)) + b"\0" * 64 * 1024  # 64 KiB messages (malformed: dropped)
    sent = 0
    with pytest.raises(zmq.Again):
        while sent < 100_000:  # 6.4 GB if nothing pushed back
            flooder.send(beat, zmq.NOBLOCK)
            sent += 1
    assert sent < 5_000, f"{sent} messages of 64 KiB accepted before any push-back"
    # the master drops what it then reads (undecodable) and goes on: a real worker still gets in
    dealer = harness.dealer("w1")
    dealer.say_hello("n1")
    for _ in range(sent + 10):
        if "w1" in harness.master.scheduler.workers:
            break
        harness.pump()
    assert "w1" in harness.master.scheduler.workers


def test_an_oversized_message_disconnects_its_sender_before_it_is_read(harness: Harness) -> None:
    big = harness.dealer("w-big")
    monitor = harness.master.workers.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        big.send(b"\0" * (protocol.MAX_MESSAGE_BYTES + 1))
        assert monitor.poll(PATIENCE_MS), "the master's socket kept the sender of an oversized message"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    finally:
        harness.master.workers.disable_monitor()
        monitor.close()
    assert harness.master.workers.poll(500) == 0  # nothing of it reached the master
    harness.worker("w1")  # and a real worker still gets in


# -- workers that heal (see healing.py): who pays for a death, and a node taken out ---------------------------------
def test_a_dead_worker_charges_the_task_it_ran_and_queues_the_others_again(harness: Harness) -> None:
    master = harness.master
    first = harness.worker("w1")
    master.scheduler.observe_duration(0.0001)  # tiny tasks: w1 gets all three queued at once
    harness.worker("w2")
    master.accept([task("ran"), task("behind", retries=0), task("also")])
    master.scheduler.workers["w2"].held_by = "reserved"  # (w2 takes nothing: all three go to w1)
    master.handle_schedule()
    assert [t["uid"] for t in received_run(first)] == ["ran", "behind", "also"]
    master.worker_died("w1", "n1", "exited with code 3", ended=True)
    assert states(harness, "ran")[-1] == ("FAILED", "worker died while running it: exited with code 3 (worker w1 "
                                                    "on node n1)")
    assert set(master.tasks) == {"behind", "also"} and master.scheduler.pending_count == 2
    assert all(master.tasks[uid]["attempt"] == 0 for uid in ("behind", "also"))  # no attempt counted
    assert not master.health.deaths.get("n1")  # a death under a task is the task's doing, not the node's
    master.scheduler.workers["w2"].held_by = None
    master.handle_schedule()
    assert master.scheduler.workers["w2"].queue[0] == "behind"  # in their order, ahead of later tasks


def test_a_node_whose_idle_workers_keep_dying_is_taken_out_and_the_pilot_goes_on(tmp_path: Path) -> None:
    with opened_harness(tmp_path, [Node("n1", 2, 0), Node("n2", 2, 0)], 2) as harness:
        master = harness.master
        for number in range(4):
            harness.worker(f"a{number}", "n1")
        other, busy = harness.worker("b1", "n2"), harness.worker("a9", "n1")
        for number in range(4):
            master.worker_died(f"a{number}", "n1", "killed by signal 9 (SIGKILL; out of memory?)", ended=True)
        assert master.scheduler.nodes["n1"].worker_capacity > 0 and not master.health.out
        master.scheduler.workers["b1"].held_by = "reserved"  # (the task goes to a9, on n1)
        master.accept([task("on-n1", retries=1)])
        master.handle_schedule()
        assert [t["uid"] for t in received_run(busy)] == ["on-n1"]
        master.worker_died("a8", "n1", "exited with code 1", ended=True)  # never said hello: counts too
        reason = "5 of its workers died within 60 s while running no task (the last: exited with code 1)"
        assert master.health.out == {"n1": reason} and master.stop_reason is None
        assert isinstance(message := received(busy), protocol.Shutdown) and reason in message.reason
        assert master.scheduler.nodes["n1"].worker_capacity == 0 and "a9" in master.lost_workers
        master.scheduler.workers["b1"].held_by = None
        master.handle_schedule()
        (retried,) = received_run(other)  # retried on the node left
        assert retried["uid"] == "on-n1" and retried["attempt"] == 1
        assert ["node", "n1", "out", "", reason] in [event[1:] for event in master.events]
        late = harness.dealer("a7")
        late.say_hello("n1")
        harness.pump()
        assert isinstance(received(late), protocol.Shutdown) and "a7" not in master.scheduler.workers
        other.send(protocol.encode(protocol.TaskUpdates([{**update("on-n1", "DONE", "b1", 1), "host": "n2"}])))
        harness.pump()
        assert not master.tasks
        for number in range(5):
            master.worker_died(f"b{number + 1}", "n2", "exited with code 1", ended=True)
        assert master.stop_reason is not None and master.stop_reason.reason.startswith(
            f"every node of this pilot is out of the schedule: node n1: {reason}; node n2: 5 of its workers")


def test_deaths_older_than_the_window_do_not_count(tmp_path: Path) -> None:
    from scalems_like.overlay.healing import NodeHealth

    health = NodeHealth(limit=3, window=60)
    assert health.worker_died("n1", "a", 0.0) is None and health.worker_died("n1", "b", 30.0) is None
    assert health.worker_died("n1", "c", 61.0) is None  # the first is out of the window
    assert health.worker_died("n1", "d", 62.0) == "3 of its workers died within 60 s while running no task " \
                                                  "(the last: d)"
    assert health.is_out("n1") and not health.all_out(["n1", "n2"]) and health.worker_died("n1", "e", 63) is None


def test_death_reasons_name_the_signal_and_what_it_often_means() -> None:
    from scalems_like.overlay.healing import death_reason

    assert death_reason(3) == "exited with code 3"
    assert death_reason(-9) == "killed by signal 9 (SIGKILL; out of memory?)"
    assert death_reason(-11) == "killed by signal 11 (SIGSEGV; a crash in native code?)"
    assert death_reason(-15) == "killed by signal 15 (SIGTERM)"
    assert death_reason(-99) == "killed by signal 99"


def test_tasks_being_canceled_when_their_worker_dies_end_canceled_not_queued_again(harness: Harness) -> None:
    master = harness.master
    first = harness.worker("w1")
    master.scheduler.observe_duration(0.0001)
    harness.worker("w2")
    master.scheduler.workers["w2"].held_by = "reserved"
    master.accept([task("ran", retries=3), task("behind", retries=3)])
    master.handle_schedule()
    assert [t["uid"] for t in received_run(first)] == ["ran", "behind"]
    master.cancel(["ran", "behind"])
    assert isinstance(received(first), protocol.CancelTasks)
    master.worker_died("w1", "n1", "killed by signal 9 (SIGKILL; out of memory?)", ended=True)
    assert not master.tasks and master.scheduler.pending_count == 0
    master.handle_flush()
    ended = {u["uid"]: (u["state"], u.get("reason")) for m in harness.client_messages(until=protocol.TaskUpdates)
             if isinstance(m, protocol.TaskUpdates) for u in m.updates if u["state"] != "QUEUED"}
    assert ended == {
        "ran": ("CANCELED", "canceled while running (its worker was lost: killed by signal 9 (SIGKILL; out of "
                            "memory?))"),
        "behind": ("CANCELED", "canceled before it started (its worker was lost)")}


# -- flow control: the task window, tasks given back by a busy worker ------------------------------------------------
def test_the_client_is_told_the_task_window_and_an_acknowledged_task_is_forgotten(harness: Harness) -> None:
    master = harness.master
    greeting = harness.client_messages(until=protocol.TaskWindow)
    assert isinstance(greeting[0], protocol.Hello) and greeting[-1] == protocol.TaskWindow(master.task_window())
    for _ in range(20):
        master.scheduler.observe_duration(0.0001)  # tiny tasks: a larger window, announced with the next flush
    master.handle_flush()
    (announced,) = [m for m in harness.client_messages(until=protocol.TaskWindow) if isinstance(m, protocol.TaskWindow)]
    assert announced == protocol.TaskWindow(master.task_window()) and announced.size > greeting[-1].size
    assert master.link.new_tasks([task("a")]) == [task("a")] and master.link.new_tasks([task("a")]) == []
    harness.client.send_multipart([b"pilot.test", protocol.encode(protocol.Acknowledge(["a"]))])
    assert master.link.socket is not None and master.link.socket.poll(PATIENCE_MS)
    master.handle_client_messages()
    assert "a" not in master.link.known  # (its end is in the client's journal: the client never sends it again)


def test_tasks_given_back_by_a_busy_worker_run_on_another_or_end_if_being_canceled(harness: Harness) -> None:
    master = harness.master
    first = harness.worker("w1")
    master.scheduler.observe_duration(0.0001)
    second = harness.worker("w2")
    master.scheduler.workers["w2"].held_by = "reserved"  # (all four go to w1)
    master.accept([task("long"), task("b"), task("c"), task("d")])
    master.handle_schedule()
    assert [t["uid"] for t in received_run(first)] == ["long", "b", "c", "d"]
    master.cancel(["d"])
    assert received(first) == protocol.CancelTasks(["d"])
    first.send(protocol.encode(protocol.GiveBack(["b", "c", "d"])))  # (its cancel crossed the give-back)
    harness.pump()
    master.scheduler.workers["w2"].held_by = None
    master.handle_schedule()
    assert [t["uid"] for t in received_run(second)] == ["b", "c"]
    assert master.scheduler.workers["w1"].queue == ("long",)
    assert states(harness, "d")[-1] == ("CANCELED", "canceled before it started")


# -- scale: the master's own long pass is not its managers' silence; a listen backlog for every node ------------------
def test_a_long_pass_of_the_master_is_not_its_managers_silence(harness: Harness) -> None:
    import time

    master = harness.master
    harness.worker("w1")
    long_ago = time.time() - 60
    master.manager_seen["m-w1"] = long_ago
    master.drained_at = long_ago + 1  # the master has not read its socket since: its heartbeats wait there unread
    master.last_silence_check = 0.0
    master.handle_deadlines()
    assert "m-w1" in master.manager_seen and not master.health.out
    master.drained_at = time.time()  # it read everything there was: the silence is the manager's
    master.last_silence_check = 0.0
    master.handle_deadlines()
    assert master.health.is_out("n1") and "its node manager m-w1 fell silent for 60 s" in master.health.out["n1"]


def test_the_listen_backlog_holds_every_nodes_first_connect(harness: Harness) -> None:
    from scalems_like.overlay.master import listen_backlog

    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert listen_backlog(3) == 100 and listen_backlog(4096) == max(100, min(4096, somaxconn))
    assert harness.master.workers.getsockopt(zmq.BACKLOG) == 100


def test_a_client_that_reattaches_right_after_the_one_before_is_followed_at_the_next_look(harness: Harness) -> None:
    """The agent looks for a reattached client's address every half second, not only once its client fell silent
    for two heartbeats (a client killed and reattached at once was followed 2 s late)."""
    import json
    import time

    from scalems_like.protocol.records import CLIENT_FILE

    link, master = harness.master.link, harness.master
    now = time.time()
    link.seen = now  # the client before spoke a moment ago
    sandbox = Path(master.config.pilot_sandbox)
    (sandbox / CLIENT_FILE).write_text(json.dumps({"address": "tcp://127.0.0.1:9", "time": now}))
    assert link.next_check(now) <= now  # the master's loop wakes for the look
    assert link.check(now, master.context, master.poller) is None
    assert link.address == "tcp://127.0.0.1:9" and link.reattached == ("tcp://127.0.0.1:9", now)


def test_the_master_takes_a_bounded_number_of_client_messages_per_pass(harness: Harness) -> None:
    """A large window arrives as many SubmitTasks chunks: one pass takes at most MESSAGES_PER_PASS of them (the
    others wait in the socket for the next pass), so that the master hears its nodes and flushes in between."""
    from scalems_like.overlay.client_link import MESSAGES_PER_PASS

    harness.client_messages(until=protocol.Hello)  # the client's ROUTER knows the agent: it can send
    count = MESSAGES_PER_PASS + 5
    for number in range(count):
        harness.client.send_multipart([b"pilot.test", protocol.encode(protocol.Heartbeat(float(number)))])
    link = harness.master.link
    assert link.socket is not None
    received: list[protocol.Message] = []
    while len(received) < count:
        assert link.socket.poll(PATIENCE_MS)
        batch = link.receive()
        assert len(batch) <= MESSAGES_PER_PASS
        received += batch
    assert [message.time for message in received if isinstance(message, protocol.Heartbeat)] == \
        [float(number) for number in range(count)]


# -- 18: no heartbeat where a message just went; the task window follows the tasks started ------------------------
def test_a_node_manager_sent_something_since_the_last_beat_gets_no_heartbeat(harness: Harness) -> None:
    """At 4 096 nodes the master's heartbeats were 4 096 messages a second; what it sends a manager anyway (its
    tasks) tells it the master is alive."""
    ends = [harness.worker("w1"), harness.worker("w2")]
    harness.master.accept([task("t")])
    harness.master.handle_schedule()
    harness.master.last_heartbeat = harness.master.last_node_heartbeat = 0.0
    harness.master.handle_heartbeats()
    first = {end.uid: received(end) for end in ends}
    busy, = [uid for uid, message in first.items() if isinstance(message, protocol.RunTasks)]
    idle, = [uid for uid, message in first.items() if isinstance(message, protocol.Heartbeat)]
    assert {busy, idle} == {"w1", "w2"}
    by_uid = {end.uid: end for end in ends}
    assert not by_uid[busy].poll(200), "a heartbeat went where the tasks had just gone"
    harness.master.last_heartbeat = harness.master.last_node_heartbeat = 0.0
    harness.master.handle_heartbeats()  # nothing sent to either since: both hear a heartbeat
    assert all(isinstance(received(end), protocol.Heartbeat) for end in ends)


def test_the_tasks_its_workers_start_are_counted_for_the_task_window(harness: Harness) -> None:
    end = harness.worker("w1")
    harness.master.accept([task("t")])
    harness.master.handle_schedule()
    (sent,) = received_run(end)
    end.send(protocol.encode(protocol.TaskUpdates([update("t", "RUNNING", "w1", sent["attempt"])])))
    harness.pump()
    assert harness.master.start_rate.started == 1
    harness.master.start_rate.since -= 1.0
    assert harness.master.start_rate.measure(harness.master.start_rate.since + 1.0) == 1.0


def test_above_a_thousand_nodes_the_managers_hear_a_heartbeat_less_often_than_the_client(tmp_path: Path) -> None:
    nodes = [Node(f"n{index}", 1, 0) for index in range(4096)]
    with opened_harness(tmp_path, nodes, 1) as harness:
        assert harness.master.node_beat == 10.0 / 3  # (a third of the heartbeat timeout)
        end = harness.worker("w1", node="n1")
        harness.master.handle_heartbeats()
        assert isinstance(received(end), protocol.Heartbeat)
        harness.master.last_heartbeat = 0.0  # a second later: the client's beat is due, not the managers'
        harness.master.handle_heartbeats()
        assert isinstance(harness.client_messages(until=protocol.Heartbeat)[-1], protocol.Heartbeat)
        assert not end.poll(200)
        harness.master.last_heartbeat = 0.0
        harness.master.last_node_heartbeat -= 4.0  # four seconds later
        harness.master.handle_heartbeats()
        assert isinstance(received(end), protocol.Heartbeat)
