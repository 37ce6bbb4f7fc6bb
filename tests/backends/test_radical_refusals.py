"""What the radical backend refuses, at once and naming the backend and the field: checked before RADICAL-Pilot
starts, so these run where radical.pilot is not installed too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like.backends.radical.mapping import pilot_fields, staging_directives
from scalems_like.client import joined


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(sl.ConfigError, match=r"Session: backend = 'rp': expected one of native, radical"):
        sl.Session(backend="rp")


@pytest.mark.parametrize(("fields", "refused"), [
    ({"stdin": "input.txt"}, r"backend 'radical': submit_tasks: item 0: TaskDescription.stdin = 'input.txt'"),
    ({"wrapper": ["strace"]}, r"TaskDescription.wrapper = \['strace'\]: RADICAL-Pilot launches tasks itself"),
    ({"inherit_environment": False}, r"TaskDescription.inherit_environment = False"),
    ({"input_staging": ["data.tar > data"], "arguments": []}, None),
    ({"input_staging": [{"source": "data", "target": "data", "action": "tarball"}]},
     r"action 'tarball' has no RADICAL-Pilot equivalent"),
    ({"output_staging": [{"source": "out", "target": "out", "when": "failure"}]},
     r"when = 'failure': RADICAL-Pilot stages outputs of successful tasks only"),
])
def test_task_fields_radical_pilot_cannot_do_are_refused(fields: dict[str, object], refused: str | None,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.tar").write_text("x")
    (tmp_path / "data").mkdir()
    with sl.Session(backend="radical") as session:
        description = sl.TaskDescription(executable="/bin/true", **fields)  # type: ignore[arg-type]
        if refused is None:  # (a copy from the client maps: RP's Transfer; waits for a pilot, none is started)
            assert session.submit_tasks([description])[0].state is sl.TaskState.NEW
            return
        with pytest.raises(sl.ConfigError, match=refused):
            session.submit_tasks([description])
        assert session.tasks == []  # nothing submitted, nothing dropped silently


def test_function_tasks_with_gpus_are_refused() -> None:
    with sl.Session(backend="radical") as session, pytest.raises(
            sl.ConfigError, match=r"TaskDescription.gpus = 1: function tasks run in one raptor worker"):
        session.submit_tasks([sl.TaskDescription(function=print, gpus=1)])


@pytest.mark.parametrize(("fields", "refused"), [
    ({"environment": "analysis"}, r"backend 'radical': PilotDescription.environment = 'analysis': environment "
                                  "specs and profiles are built by scalems_like's bootstrap"),
    ({"pre_bootstrap": ["module load gromacs"]}, r"PilotDescription.pre_bootstrap = \['module load gromacs'\]"),
])
def test_pilot_fields_that_need_our_bootstrap_are_refused(fields: dict[str, object], refused: str) -> None:
    with sl.Session(backend="radical") as session, pytest.raises(sl.ConfigError, match=refused):
        session.submit_pilot(sl.PilotDescription(resource="local.localhost", **fields))  # type: ignore[arg-type]
    assert session.pilots == []


def test_pilot_fields_map_onto_radical_pilot_minutes_and_names() -> None:
    description = sl.PilotDescription(resource="ornl.frontier", nodes=2, runtime=3601, queue="batch", account="ab1")
    assert pilot_fields(description) == {"resource": "ornl.frontier", "nodes": 2, "runtime": 61, "queue": "batch",
                                         "project": "ab1"}
    assert pilot_fields(sl.PilotDescription(resource="local.localhost", cores=4, gpus=1, runtime=30)) == {
        "resource": "local.localhost", "cores": 4, "gpus": 1, "runtime": 1}


def test_staging_directives_map_onto_radical_pilots() -> None:
    directives = sl.TaskDescription(executable="/bin/true", input_staging=[
        "inputs/a.txt > a.txt", {"source": "pilot:///shared.dat", "target": "shared.dat", "action": "link"},
        "file:///data/big > big"]).input_staging
    assert staging_directives(directives, "input_staging") == [
        {"source": "client:///inputs/a.txt", "target": "task:///a.txt", "action": "Transfer", "flags": 1},
        {"source": "pilot:///shared.dat", "target": "task:///shared.dat", "action": "Link", "flags": 1},
        {"source": "file://localhost/data/big", "target": "task:///big", "action": "Copy", "flags": 1}]


def test_detach_and_reattach_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    session = sl.Session(backend="radical")
    with session:
        session.record_info("backend", "radical")  # (as its first pilot records it)
        with pytest.raises(sl.ConfigError, match=r"backend 'radical' cannot detach"):
            session.detach()
    for restore in (sl.Session.reattach, sl.Session.resume):
        with pytest.raises(sl.ConfigError, match=rf"session {session.uid} ran on backend 'radical': it cannot be "
                                                 r"(reattached|resumed)"):
            restore(session.uid)


def test_inside_run_a_session_asks_for_the_runs_backend(tmp_path: Path) -> None:
    run_session = sl.Session(backend="radical")
    with joined.held_by_run(run_session, sl.PilotDescription(resource="local.localhost"), lambda: None):  # type: ignore[arg-type,return-value]
        assert sl.Session(backend="radical") is run_session
        with pytest.raises(sl.ConfigError, match=r"scalems-like run --backend native"):
            sl.Session(backend="native")


def test_run_refuses_an_unknown_backend_and_a_submitted_radical_session(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text("print('never')\n")
    wrong = subprocess.run([sys.executable, "-m", "scalems_like", "run", "--backend", "rp", str(script)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert wrong.returncode == 2 and "argument --backend: invalid choice: 'rp'" in wrong.stderr
    submitted = subprocess.run([sys.executable, "-m", "scalems_like", "run", "--backend", "radical",
                                "--in-allocation", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert submitted.returncode == 2, submitted.stderr
    assert "--backend radical: a submitted session runs on the native backend only" in submitted.stderr


def test_the_variables_set_for_radical_pilot_are_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """RP needs its commands on PATH and VIRTUAL_ENV naming this environment; once its session closes, native
    pilots of the same process must not inherit them (a conda env's pilot found VIRTUAL_ENV set)."""
    pytest.importorskip("radical.pilot", reason="radical.pilot is not installed")
    import os

    from scalems_like.backends.radical.runtime import put_scripts_on_path, restore_variables

    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    path = os.environ["PATH"]
    before = put_scripts_on_path()
    assert os.environ.get("VIRTUAL_ENV") or os.environ["PATH"] != path  # (something was set for RP)
    restore_variables(before)
    assert "VIRTUAL_ENV" not in os.environ and os.environ["PATH"] == path
