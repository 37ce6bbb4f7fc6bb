"""Exit codes of the CLI: 2 for a command line that cannot be used (naming the option and the value), before
anything is done; a reader that closes the pipe early ends the command quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like.cli.main import BROKEN_PIPE, main


def scalems_like(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalems_like", *argv], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--pilot", "foo=1"], "--pilot 'foo=1': expected KEY=VALUE with KEY one of cores"),
    (["run", "--pilot", "cores=two"], "--pilot cores='two': expected int"),
    (["run", "--pilot", "cores=0"], "--pilot: PilotDescription.cores = 0: expected an integer >= 1"),
    (["run", "--pilot", "runtime=-5"], "--pilot: PilotDescription.runtime = -5.0: expected a number of seconds"),
    (["run", "--timeout", "-1"], "argument --timeout: '-1': expected a number of seconds > 0"),
    (["run", "--timeout", "soon"], "argument --timeout: 'soon': expected a number of seconds"),
    (["run", "--param", "steps"], "argument --param: 'steps': expected KEY=VALUE"),
    (["submit", "--param", "=3"], "argument --param: '=3': expected KEY=VALUE"),
])
def test_bad_run_and_submit_arguments_exit_2_naming_option_and_value(tmp_path: Path, argv: list[str],
                                                                     message: str) -> None:
    script = tmp_path / "workflow.py"
    script.write_text("raise SystemExit('the script must not run')\n")
    result = scalems_like(*argv, str(script), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / ".scalems-like-cache").exists()


def test_cancel_says_what_is_missing_or_conflicting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cancel"]) == 2
    assert "cancel: nothing to cancel: give a SESSION, or --queued" in capsys.readouterr().err
    assert main(["cancel", "session.20261123.101500.4242.ab12", "--queued"]) == 2
    assert "give a SESSION (session.20261123.101500.4242.ab12) or --queued, not both" in capsys.readouterr().err


def test_plot_to_an_unknown_format_and_init_without_a_name_are_usage_errors(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "session.20261123.101500.4242.ab12", "--out", "run.txt"]) == 2
    assert "--out 'run.txt': expected a file name ending in" in capsys.readouterr().err
    assert main(["init", " "]) == 2
    assert "init ' ': expected the new project's directory name" in capsys.readouterr().err


def test_a_missing_session_or_script_is_a_failure_not_a_usage_error(tmp_path: Path) -> None:
    assert scalems_like("status", "session.nope").returncode == 1
    assert scalems_like("run", str(tmp_path / "nope.py")).returncode == 1


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly() -> None:
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=120))
        tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/true") for _ in range(300)])
        session.wait_tasks(tasks, timeout=120)
    profile = subprocess.Popen([sys.executable, "-m", "scalems_like", "profile", session.uid, "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert profile.stdout is not None and profile.stderr is not None
    assert profile.stdout.read(400).startswith(b"[")  # as `| head -c 400` does: then the reader is gone
    profile.stdout.close()
    error = profile.stderr.read().decode()
    assert profile.wait(timeout=60) == BROKEN_PIPE
    assert error == ""  # no traceback, no "Exception ignored ... BrokenPipeError" at the interpreter's exit
