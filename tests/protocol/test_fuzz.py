"""Property-based fuzzing of everything that reads outside input: wire messages, agent journals, bootstrap
feedback, task and pilot descriptions, staging directives, resource configs. The only allowed failure is the
project's own error type, with a message."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scalems_like as sl
from scalems_like import protocol
from scalems_like.errors import ConfigError, ProtocolError, ScalemsError
from scalems_like.protocol.feedback import parse_events
from scalems_like.protocol.records import read_records
from scalems_like.resources import load_resource
from scalems_like.staging.directives import parse_all

EXAMPLES = int(os.environ.get("SCALEMS_FUZZ_EXAMPLES", "200"))
"""Examples per property (raise it for a longer fuzzing run: SCALEMS_FUZZ_EXAMPLES=20000)."""
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12) | st.sampled_from(sorted(protocol.TASK_KEYS | protocol.UPDATE_KEYS)), inner, max_size=5),
    max_leaves=20)
TAGS = ["hello", "bootstrap_events", "submit", "run", "cancel", "updates", "heartbeat", "shutdown", "stopping",
        "ack", "worker_hello", "agent_events", "task_window", "give_back", "nope"]


def decodes_or_refuses(data: bytes) -> None:
    try:
        message = protocol.decode(data)
    except ProtocolError as error:
        assert str(error)
        return
    assert protocol.decode(protocol.encode(message)) == message  # whatever is accepted round-trips


@FUZZ
@given(st.binary(max_size=200))
def test_decode_of_random_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@FUZZ
@given(st.sampled_from([protocol.PROTOCOL_VERSION, 1, -1, "2"]), st.sampled_from(TAGS),
       st.lists(values, max_size=6))
def test_decode_of_random_frames(version: Any, tag: str, fields: list[Any]) -> None:
    decodes_or_refuses(msgpack.packb([version, tag, *fields], use_bin_type=True))


shallow = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=5), scalars, max_size=2)
task_like = st.fixed_dictionaries({"uid": st.text(max_size=10), "kind": st.text(max_size=10)},
                                  optional={key: shallow for key in sorted(protocol.TASK_KEYS - {"uid", "kind"})})
update_like = st.fixed_dictionaries({"uid": st.text(max_size=10), "state": st.text(max_size=10),
                                     "time": st.floats() | st.integers(-(2 ** 63), 2 ** 63)},
                                    optional={key: shallow for key in sorted(protocol.UPDATE_KEYS
                                                                            - {"uid", "state", "time"})})


@FUZZ
@given(st.sampled_from(["submit", "run"]), st.lists(task_like, max_size=3))
def test_decode_of_nearly_valid_tasks(tag: str, tasks: list[dict[str, Any]]) -> None:
    decodes_or_refuses(msgpack.packb([protocol.PROTOCOL_VERSION, tag, tasks], use_bin_type=True))


@FUZZ
@given(st.lists(update_like, max_size=3))
def test_decode_of_nearly_valid_updates(updates: list[dict[str, Any]]) -> None:
    decodes_or_refuses(msgpack.packb([protocol.PROTOCOL_VERSION, "updates", updates], use_bin_type=True))


def test_accepted_tasks_have_safe_uids_and_stdio() -> None:
    for uid in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(ProtocolError, match="invalid uid"):
            protocol.decode(protocol.encode(protocol.RunTasks([{"uid": uid, "kind": "function"}])))
    for name in ("/etc/passwd", "../../out", "a/../../b"):
        with pytest.raises(ProtocolError, match="leaves the task sandbox"):
            protocol.decode(protocol.encode(protocol.RunTasks([{"uid": "t", "kind": "executable", "stdout": name}])))
    with pytest.raises(ProtocolError, match="item 0 key 'cores' has type str"):
        protocol.decode(protocol.encode(protocol.SubmitTasks([{"uid": "t", "kind": "executable", "cores": "2"}])))
    with pytest.raises(ProtocolError, match="unknown key 'evil'"):
        protocol.decode(protocol.encode(protocol.TaskUpdates([{"uid": "t", "state": "DONE", "time": 1, "evil": 1}])))


@FUZZ
@given(data=st.binary(max_size=300))
def test_agent_journal_reader_on_random_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("journal") / "agent.journal"
    path.write_bytes(data)
    records = read_records(path)
    assert isinstance(records, list)


@FUZZ
@given(st.text(max_size=300))
def test_feedback_parser_on_random_text(text: str) -> None:
    assert isinstance(parse_events(text), list)


description_fields = st.dictionaries(st.sampled_from([
    "name", "environment", "working_directory", "cores", "gpus", "ranks", "stdin", "stdout", "stderr",
    "timeout", "retries", "idempotent", "tags", "arguments", "input_staging", "output_staging"]), values,
    max_size=4)


@FUZZ
@given(description_fields)
def test_task_description_validation(fields: dict[str, Any]) -> None:
    try:
        sl.TaskDescription(executable="/bin/true", **fields)
    except ConfigError as error:
        assert "TaskDescription" in str(error) or "staging" in str(error)


@FUZZ
@given(st.dictionaries(st.sampled_from(["resource", "cores", "gpus", "nodes", "runtime", "queue", "account",
                                        "project", "environment", "pre_bootstrap", "input_staging"]), values,
                       max_size=4))
def test_pilot_description_validation(fields: dict[str, Any]) -> None:
    try:
        sl.PilotDescription(**fields)
    except ConfigError as error:
        assert str(error)


@FUZZ
@given(st.lists(st.text(max_size=40) | values, max_size=3), st.booleans())
def test_staging_directive_parsing(directives: list[Any], output: bool) -> None:
    try:
        parse_all(directives, output=output, where="fuzz")
    except ConfigError as error:
        assert str(error)


@settings(max_examples=max(50, EXAMPLES // 4), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200) | st.dictionaries(st.text(max_size=20), values, max_size=4).map(repr))
def test_resource_config_loading(text: str, isolated_dirs: Path) -> None:
    directory = isolated_dirs / "config" / "resources"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fuzzed.yaml").write_text(text)
    try:
        load_resource("fuzzed")
    except ScalemsError as error:
        assert str(error)
