"""A script that opens its own ``sl.Session()`` and pilot, run under ``scalems-like run``: one session, one pilot.

Under ``run``, ``sl.Session()`` is the run's session; the script's first ``submit_pilot`` gets the run's pilot
when its description fits it (or is refused with a sentence saying what to do); closing the session inside the
script leaves it open until the run has waited for every task.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import scalems_like as sl
from scalems_like.client import joined
from scalems_like.client.joined import run_pilot_misfit
from scalems_like.descriptions import PilotDescription

OWN_SESSION = textwrap.dedent("""
    import scalems_like as sl

    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=300))
        tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/echo", arguments=[str(i)])
                                      for i in range(30)])
        session.wait_tasks(tasks, timeout=120)
        session.submit_tasks([sl.TaskDescription(function=pow, args=(2, i)) for i in range(8)])  # not waited for
    print("script:", session.uid, pilot.uid, session is sl.current_session(), flush=True)
""")


def run(script: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalems_like", "run", *argv, str(script)], capture_output=True,
                          text=True, timeout=240, cwd=script.parent)


def sessions() -> list[dict[str, Any]]:
    """Every session as ``scalems-like ls --json`` has it, its pilots as {uid: state}."""
    listed = subprocess.run([sys.executable, "-m", "scalems_like", "ls", "--json"], capture_output=True, text=True,
                            check=True)
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    return [{**row, "pilots": {pilot["pilot"]: pilot["state"] for pilot in row["pilots"]}} for row in rows]


def test_a_script_with_its_own_session_and_pilot_makes_one_session_and_one_pilot(tmp_path: Path) -> None:
    script = tmp_path / "standalone.py"
    script.write_text(OWN_SESSION)
    result = run(script, "--pilot", "cores=2,runtime=300")
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = sessions()
    assert row["pilots"] == {"pilot.0000": "DONE"} and row["tasks"] == {"DONE": 38}, row
    assert f"script: {row['session']} pilot.0000 True" in result.stdout
    assert f"{row['session']}: 38 task(s) in" in result.stdout and "│ DONE  │    38 │" in result.stdout


def test_a_pilot_the_runs_pilot_cannot_stand_for_is_refused_with_what_to_do(tmp_path: Path) -> None:
    script = tmp_path / "longer.py"
    script.write_text("import scalems_like as sl\n"
                      "sl.Session().submit_pilot(sl.PilotDescription(cores=2, runtime=3600))\n")
    result = run(script, "--pilot", "cores=2,runtime=300")
    assert result.returncode == 1
    assert ("ConfigError: submit_pilot(runtime=3600) inside `scalems-like run`: the run's pilot has runtime=300; "
            "give the pilot's shape to run (`scalems-like run --pilot runtime=3600 ...`), or drop submit_pilot from "
            "the script: the run's pilot runs its tasks") in result.stderr, result.stderr
    (row,) = sessions()
    assert set(row["pilots"].values()) <= {"CANCELED"} and len(row["pilots"]) <= 1, row  # (the run's, if any)


def test_a_second_session_is_refused_with_what_to_do(tmp_path: Path) -> None:
    script = tmp_path / "second.py"
    script.write_text("import scalems_like as sl\nsl.Session(journal=False)\n")
    result = run(script, "--pilot", "cores=1,runtime=60")
    assert result.returncode == 1
    assert "sl.Session(journal=False) inside `scalems-like run` would open a second session beside the run's" \
        in result.stderr, result.stderr
    assert len(sessions()) == 1


@pytest.mark.parametrize(("asked", "misfit"), [
    (PilotDescription(), None),
    (PilotDescription(cores=2, runtime=300), None),
    (PilotDescription(cores=2, gpus=0, nodes=1, runtime=60, queue="debug"), None),
    (PilotDescription(cores=8), "cores"),
    (PilotDescription(nodes=2), "nodes"),
    (PilotDescription(gpus=1), "gpus"),
    (PilotDescription(runtime=3600), "runtime"),
    (PilotDescription(resource="slurm"), "resource"),
    (PilotDescription(queue="long"), "queue"),
    (PilotDescription(environment="gromacs"), "environment"),
    (PilotDescription(pre_bootstrap=["module load x"]), "pre_bootstrap"),
    (PilotDescription(input_staging=["data.txt > pilot://data.txt"]), "input_staging"),
])
def test_what_the_runs_pilot_stands_for(asked: PilotDescription, misfit: str | None) -> None:
    assert run_pilot_misfit(asked, PilotDescription(cores=4, runtime=600, queue="debug")) == misfit


def test_a_runs_pilot_of_whole_nodes_stands_for_any_cores() -> None:
    assert run_pilot_misfit(PilotDescription(cores=64), PilotDescription(cores=None)) is None


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
def test_on_slurm_a_script_with_its_own_session_and_pilot_makes_one_batch_job(tmp_path: Path) -> None:
    script = tmp_path / "standalone.py"
    script.write_text(OWN_SESSION.replace('resource="local"', 'resource="slurm"'))
    result = run(script, "--resource", "slurm", "--pilot", "cores=2,runtime=300")
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = sessions()
    assert row["pilots"] == {"pilot.0000": "DONE"} and row["tasks"] == {"DONE": 38}, row
    assert f"script: {row['session']} pilot.0000 True" in result.stdout


def test_a_run_that_submits_its_pilot_when_first_asked_hands_it_to_the_scripts_submit_pilot() -> None:
    """The hold of a run whose pilot is submitted on demand (its provider calls submit_pilot itself): the script's
    first submit_pilot gets that pilot, once; a later one is a pilot of its own. The script cannot close or detach
    the run's session, nor open another."""
    runs = PilotDescription(cores=1, runtime=60)
    with sl.Session() as session:
        provided: list[sl.Pilot] = []

        def provide() -> sl.Pilot:
            if not provided:
                provided.append(session.submit_pilot(runs))
            return provided[0]
        with joined.held_by_run(session, runs, provide):
            with sl.Session() as inner:
                assert inner is session and sl.current_session() is session
                first = inner.submit_pilot(PilotDescription(runtime=30))
                assert first is provided[0] and session.pilots == [first]
                with pytest.raises(sl.ConfigError, match=r"^sl.Session\('other'\) inside `scalems-like run` "
                                   r"would open a second session beside the run's \(session\."):
                    sl.Session("other")
                with pytest.raises(sl.ScalemsError, match="it cannot be detached"):
                    inner.detach()
                inner.close()
            assert session.submit_tasks([sl.TaskDescription(function=abs, args=(-3,))])[0].result(timeout=60) == 3
            second = session.submit_pilot(PilotDescription(cores=1, runtime=30))
            assert second is not first and [pilot.uid for pilot in session.pilots] == ["pilot.0000", "pilot.0001"]
        assert sl.Session() is not session  # (the run's hold has ended)
    assert first.state is sl.PilotState.DONE


def test_a_run_that_submitted_its_pilot_for_a_first_task_hands_that_pilot_to_a_later_submit_pilot() -> None:
    """The run submits its own description (at the script's first task, under its own lock): that is not the
    script's claim; the script's submit_pilot afterwards gets that pilot."""
    runs = PilotDescription(cores=1, runtime=60)
    lock = threading.Lock()  # (not reentrant: a claim that called back into the provider would hang here)
    with sl.Session() as session:
        provided: list[sl.Pilot] = []

        def provide() -> sl.Pilot:
            with lock:
                if not provided:
                    provided.append(session.submit_pilot(runs))
                return provided[0]
        with joined.held_by_run(session, runs, provide):
            first = provide()  # (the run, for the script's first task)
            assert sl.Session().submit_pilot(PilotDescription(cores=1)) is first and session.pilots == [first]
