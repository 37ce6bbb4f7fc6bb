import msgpack
import pytest

from scalems_like import protocol
from scalems_like.errors import ProtocolError

V = protocol.PROTOCOL_VERSION


def test_every_message_round_trips() -> None:
    messages = [
        protocol.Hello("pilot.0000", "host", 42, [["n1", 4, 0]], 1.5),
        protocol.SubmitTasks([{"uid": "task.000000", "kind": "executable"}]),
        protocol.RunTasks([{"uid": "task.000000", "kind": "function"}]),
        protocol.CancelTasks(["task.000001"]),
        protocol.TaskUpdates([{"uid": "task.000000", "state": "DONE", "time": 1.0, "return_value": b"\x80\x04"}]),
        protocol.Heartbeat(2.0),
        protocol.Shutdown("session closed"),
        protocol.AgentStopping("DONE", "runtime ended"),
        protocol.WorkerHello("w.0", "n1", "host", 7),
        protocol.Acknowledge(["task.000000"]),
        protocol.TaskWindow(64),
        protocol.GiveBack(["task.000002"]),
        protocol.NodeTasks("/tasks", [["w.0", [{"uid": "task.000003", "kind": "function"}]], ["w.1", []]]),
    ]
    for message in messages:
        assert protocol.decode(protocol.encode(message)) == message


def test_other_protocol_version_is_refused_with_a_clear_error() -> None:
    data = msgpack.packb([V + 1, "heartbeat", 1.0])
    with pytest.raises(ProtocolError, match=rf"protocol version {V + 1}.*speaks {V}"):
        protocol.decode(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (msgpack.packb([V, "no-such-tag"]), "unknown message tag"),
        (msgpack.packb([V, "heartbeat"]), "has 0 fields, expected 1"),
        (msgpack.packb([V, "node_tasks", "/t", [["w.0"]]]), r"an assignment is not \[worker_uid, tasks\]"),
        (msgpack.packb([V, "node_tasks", "/t", [["w.0", [{"uid": "../x", "kind": "function"}]]]]), "invalid uid"),
        (msgpack.packb([V, "heartbeat", "soon"]), "field 'time' has type str"),
        (msgpack.packb({"tag": "heartbeat"}), "not a \\[version, tag"),
        (msgpack.packb([V, "hello", "p", "h", True, [], 1.0]), "field 'pid' has type bool"),
        (b"\xc1\xc1\xc1", "undecodable"),
        (protocol.encode(protocol.Heartbeat(1.0))[:-3], "undecodable"),
    ],
)
def test_malformed_messages_raise_protocol_error(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        protocol.decode(data)


def test_a_relay_checks_node_tasks_as_far_as_it_reads_them_and_the_worker_checks_each_task() -> None:
    """A node manager decodes a NodeTasks with ``relay=True``: worker uids and task uids checked (a task's uid names
    its sandbox), the rest of each task left to the worker that decodes its RunTasks."""
    odd = msgpack.packb([V, "node_tasks", "/t", [["w.0", [{"uid": "task.1", "kind": "function", "odd": 1}]]]])
    with pytest.raises(ProtocolError, match="unknown key 'odd'"):
        protocol.decode(odd)
    (worker, (task,)), = protocol.decode(odd, relay=True).assignments  # type: ignore[attr-defined]
    assert worker == "w.0"
    with pytest.raises(ProtocolError, match="unknown key 'odd'"):  # ... and its worker refuses it
        protocol.decode(protocol.encode(protocol.RunTasks([task])))
    for bad, match in [([["w.0", [{"uid": "../x"}]]], "without a valid uid"), ([["w.0", ["x"]]], "without a valid uid"),
                       ([[1, []]], r"not \[worker_uid, tasks\]"), ([["w.0"]], r"not \[worker_uid, tasks\]")]:
        with pytest.raises(ProtocolError, match=match):
            protocol.decode(msgpack.packb([V, "node_tasks", "/t", bad]), relay=True)


def test_feedback_lines_parse_and_a_partial_line_waits() -> None:
    from scalems_like.protocol.feedback import parse_events

    text = "1.5\tsandbox\tstarted\t0\n2.0\tsandbox\tfailed\t3\nbad line\n3.0\thooks\tsta"
    assert parse_events(text) == [(1.5, "sandbox", "started", 0), (2.0, "sandbox", "failed", 3)]


def test_agent_events_round_trip_and_are_checked() -> None:
    events = [[1.5, "worker", "node1", "start", "pilot.0000.worker.0", ""]]
    assert protocol.decode(protocol.encode(protocol.AgentEvents(events))).events == events
    bad = msgpack.packb([V, "agent_events", [[1.5, "worker", "node1", "start", 7, ""]]], use_bin_type=True)
    with pytest.raises(ProtocolError, match="an event is not"):
        protocol.decode(bad)


def test_a_result_kept_in_the_sandbox_travels_as_a_checked_reference() -> None:
    reference = {"name": "return_value.pickle", "bytes": 200_000_000, "sha256": "ab" * 32}
    update = {"uid": "task.000000", "state": "DONE", "time": 1.0, "return_value_file": reference}
    assert protocol.decode(protocol.encode(protocol.TaskUpdates([update]))).updates == [update]
    for bad, match in [({**reference, "name": "../../.ssh/id_rsa"}, "is not a file name in the task sandbox"),
                       ({**reference, "name": ".."}, "is not a file name in the task sandbox"),
                       ({"name": "return_value.pickle", "bytes": 1}, "return_value_file lacks sha256"),
                       ({**reference, "bytes": "many"}, "return_value_file key 'bytes' has type str"),
                       ({**reference, "path": "/x"}, "return_value_file has an unknown key 'path'")]:
        data = msgpack.packb([V, "updates", [{**update, "return_value_file": bad}]], use_bin_type=True)
        with pytest.raises(ProtocolError, match=match):
            protocol.decode(data)


def test_nodes_ready_round_trips_and_is_checked() -> None:
    nodes = [["n1", 4, 4, ""], ["n2", 0, 4, "none of its workers joined within 60 s (node_join_timeout)"]]
    assert protocol.decode(protocol.encode(protocol.NodesReady(2.5, nodes))) == protocol.NodesReady(2.5, nodes)
    for bad in (["n1", 4, 4], ["n1", True, 4, ""], ["n1", 4, 4, None], "n1"):
        data = msgpack.packb([V, "nodes_ready", 2.5, [bad]], use_bin_type=True)
        with pytest.raises(ProtocolError, match=r"a node is not \[name, ready_cores, cores, out\]"):
            protocol.decode(data)
