"""``scalems-like run``: a workflow script with no session code, run as a user runs it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scalems_like.cli.commands import PILOT_KEYS, parse_pilot
from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ConfigError
from scalems_like.record.journal import Journal

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalems_like", "run", *argv], capture_output=True, text=True,
                          timeout=240, cwd=cwd)


def test_the_ensemble_example_runs_and_summarizes(tmp_path: Path) -> None:
    result = run("--cores", "2", "--runtime", "300", str(EXAMPLES / "ensemble.py"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sum of squares of 0..99: 328350" in result.stdout
    assert "100 task(s)" in result.stdout and "│ DONE  │   100 │" in result.stdout
    assert "not DONE" not in result.stdout


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
def test_the_same_script_runs_unchanged_on_slurm(tmp_path: Path) -> None:
    result = run("--resource", "slurm", "--nodes", "2", "--runtime", "300", str(EXAMPLES / "ensemble.py"), "40",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sum of squares of 0..39: 20540" in result.stdout and "on slurm" in result.stderr


def test_failed_tasks_exit_1_with_their_reasons_grouped(tmp_path: Path) -> None:
    script = tmp_path / "flaky.py"
    script.write_text(
        "import scalems_like as sl\n"
        "session = sl.current_session()\n"
        "session.submit_tasks([sl.TaskDescription(executable='/bin/sh', arguments=['-c', f'exit {i % 2}'])\n"
        "                      for i in range(6)])\n")
    result = run("--cores", "1", "--runtime", "120", str(script))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "6 task(s) in" in result.stdout and "│ DONE   │     3 │" in result.stdout
    assert "│ FAILED │     3 │" in result.stdout and "not DONE, by reason" in result.stdout
    assert "│     3 │ exited with code 1 │" in result.stdout


def test_a_script_that_raises_exits_1_and_shows_its_traceback(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import scalems_like as sl\nsl.current_session()\nraise RuntimeError('my bug')\n")
    result = run("--cores", "1", "--runtime", "60", str(script), "--flag")
    assert result.returncode == 1
    assert "the script raised" in result.stderr and "RuntimeError: my bug" in result.stderr
    trace = result.stderr.split("the script raised:", 1)[1]
    assert trace.split("\n")[2].startswith(f'  File "{script}", line 3, in <module>')  # the script's frames only
    assert "runpy" not in trace and "cli/run.py" not in trace


def test_bad_arguments_name_the_key_and_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--pilot 'colors=2': expected KEY=VALUE with KEY one of cores"):
        parse_pilot("colors=2")
    with pytest.raises(ConfigError, match=r"--pilot cores='two': expected int"):
        parse_pilot("cores=two")
    assert parse_pilot("cores=4, runtime=3600,queue=debug") == {"cores": 4, "runtime": 3600.0, "queue": "debug"}
    assert set(PILOT_KEYS) <= {field.name for field in dataclasses.fields(PilotDescription)}
    missing = run(str(tmp_path / "nope.py"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_the_pipeline_example_passes_files_between_stages(tmp_path: Path) -> None:
    result = run("--no-cache", "--cores", "2", "--runtime", "300", str(EXAMPLES / "pipeline.py"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lowest energy of 20 members: 100" in result.stdout  # seed 11: 77 % 11 == 0
    assert "61 task(s)" in result.stdout  # 20 simulate, 20 analyse, 20 read_energy, 1 lowest
    assert not (tmp_path / ".scalems-like-cache").exists()


def test_a_second_run_takes_every_result_from_the_cache(tmp_path: Path) -> None:
    first = run("--cores", "2", "--runtime", "300", str(EXAMPLES / "pipeline.py"), cwd=tmp_path)
    assert first.returncode == 0 and "lowest energy of 20 members: 100" in first.stdout
    listed = subprocess.run([sys.executable, "-m", "scalems_like", "cache", "ls", "--json"], capture_output=True,
                            text=True, cwd=tmp_path, check=True)
    entries = json.loads(listed.stdout)
    # identical calls share an entry: 11 distinct members (7 * seed % 11), their analyses, reads, one reduction
    assert {entry["app"] for entry in entries} == {"simulate", "analyse", "read_energy", "lowest"}
    assert sum(entry["app"] == "simulate" for entry in entries) == 20  # seeds differ: 20 keys
    second = run("--cores", "2", "--runtime", "300", str(EXAMPLES / "pipeline.py"), cwd=tmp_path)
    assert second.returncode == 0 and "lowest energy of 20 members: 100" in second.stdout
    uid = second.stderr.split("session ", 1)[1].split(":", 1)[0]
    assert f"{uid}: 0 task(s) and 61 from cache in" in second.stdout  # nothing ran again: every call from the cache
    assert "pilot.0000" not in second.stderr  # and no pilot started for nothing
    journal = Journal.open(uid)
    try:
        assert journal.pilots() == []
    finally:
        journal.connection.close()
    cleared = subprocess.run([sys.executable, "-m", "scalems_like", "cache", "clear"], capture_output=True,
                             text=True, cwd=tmp_path, check=True)
    assert f"removed {len(entries)} cached result(s)" in cleared.stdout
    assert not (tmp_path / ".scalems-like-cache").exists()


@pytest.mark.parametrize(("example", "expected", "tasks"), [
    ("mapreduce.py", "'the' appears 600 times in 200 chunks; 10 distinct words", 201),
    ("adaptive.py", "minimum at x = 37 after 4 rounds", 36),
])
def test_the_function_examples(tmp_path: Path, example: str, expected: str, tasks: int) -> None:
    result = run("--no-cache", "--cores", "2", "--runtime", "300", str(EXAMPLES / example), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout and f"{tasks} task(s)" in result.stdout
