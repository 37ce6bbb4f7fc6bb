"""The wire's task records declared once (protocol/tasks.py): the tables decode checks are derived from the
TypedDicts, and task_update builds every update."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from scalems_like.errors import ProtocolError
from scalems_like.protocol import messages
from scalems_like.protocol.tasks import (
    CLIENT_HOST,
    ResultFile,
    TaskMapping,
    TaskUpdate,
    is_final,
    required_keys,
    runtime_types,
    task_update,
)
from scalems_like.states import TASK_FINAL, TaskState

NONE = type(None)
NUMBER = (int, float)
# The tables as protocol 6 spelled them out by hand before they were derived: the derivation changes nothing
TASK_TABLE_OF_PROTOCOL_6: dict[str, Any] = {
    "uid": str, "name": (str, NONE), "kind": str, "executable": str, "arguments": list, "function": bytes,
    "call_arguments": bytes, "environment": dict, "working_directory": (str, NONE), "sandbox": str,
    "cores": int, "gpus": int, "ranks": int, "stdin": (str, NONE), "stdout": str, "stderr": str,
    "timeout": (*NUMBER, NONE), "retries": int, "idempotent": bool, "tags": dict, "gpu_ids": list,
    "attempt": int, "placement": list, "input_staging": list, "output_staging": list,
    "inherit_environment": bool, "wrapper": list, "results_in_sandbox_above": int,
}
UPDATE_TABLE_OF_PROTOCOL_6: dict[str, Any] = {
    "uid": str, "state": str, "time": NUMBER, "host": (str, NONE), "worker": str, "exit_code": (int, NONE),
    "reason": (str, NONE), "return_value": bytes, "exception": bytes, "traceback": str, "output": str,
    "started": NUMBER, "attempt": int, "pid": int, "interrupted": str, "return_value_file": dict,
}


def test_decode_checks_what_the_typed_records_declare() -> None:
    assert messages.TASK_TYPES == runtime_types(TaskMapping) == TASK_TABLE_OF_PROTOCOL_6
    assert messages.UPDATE_TYPES == runtime_types(TaskUpdate) == UPDATE_TABLE_OF_PROTOCOL_6
    assert messages.RESULT_FILE_TYPES == runtime_types(ResultFile) == {"name": str, "bytes": int, "sha256": str}
    assert frozenset(TASK_TABLE_OF_PROTOCOL_6) == messages.TASK_KEYS
    assert required_keys(TaskMapping) == ("uid", "kind")
    assert required_keys(TaskUpdate) == ("uid", "state", "time")
    assert required_keys(ResultFile) == ("name", "bytes", "sha256")


def test_runtime_types_follow_the_annotations() -> None:
    class Record(TypedDict, total=False):
        count: int
        ratio: float
        label: str | None
        names: list[str]
        table: dict[str, int]
        file: ResultFile
        either: int | bytes | None

    assert runtime_types(Record) == {"count": int, "ratio": NUMBER, "label": (str, NONE), "names": list,
                                     "table": dict, "file": dict, "either": (int, bytes, NONE)}

    class Vague(TypedDict):
        anything: Any

    with pytest.raises(TypeError, match="no runtime check for the annotation"):
        runtime_types(Vague)


@pytest.mark.parametrize("state", list(TaskState))
def test_every_update_task_update_builds_passes_decode(state: TaskState) -> None:
    update = task_update("task.000001", state, 12.5, "node-1", attempt=1, worker="pilot.worker.0", reason="why",
                         exit_code=3, started=10.0, return_value_file={"name": "r.pickle", "bytes": 3, "sha256": "ab"})
    assert update["state"] == state.value and type(update["state"]) is str
    decoded = messages.decode(messages.encode(messages.TaskUpdates([update])))
    assert isinstance(decoded, messages.TaskUpdates)
    assert decoded.updates == [update]
    assert is_final(update) == (state in TASK_FINAL)


def test_an_update_needs_a_state_enum() -> None:
    with pytest.raises(TypeError, match="state 'DONE' is not a TaskState"):
        task_update("t1", "DONE", 1.0, "node")  # type: ignore[arg-type]


def test_attempt_is_left_out_unless_given() -> None:
    assert task_update("t1", TaskState.QUEUED, 1.0, None) == {"uid": "t1", "state": "QUEUED", "time": 1.0,
                                                              "host": None}


def test_the_clients_own_keys_are_refused_on_the_wire() -> None:
    """pilot, sandbox and requeue are journaled by the client, never sent: decode drops a message carrying one."""
    update = task_update("t1", TaskState.SUBMITTED, 1.0, CLIENT_HOST, pilot="pilot.0000", sandbox="/s/t1")
    with pytest.raises(ProtocolError, match="unknown key 'pilot'"):
        messages.decode(messages.encode(messages.TaskUpdates([update])))


def test_a_task_lacking_a_required_key_is_refused() -> None:
    with pytest.raises(ProtocolError, match="lacks kind"):
        messages.decode(messages.encode(messages.SubmitTasks([{"uid": "t1", "executable": "/bin/true"}])))
