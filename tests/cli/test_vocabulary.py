"""One tool, one vocabulary: a light ``--help``/``--version``, one listing of sessions with one set of state
names, one spelling of a pilot's shape, sessions named by a prefix or ``last``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scalems_like.cli.main import main
from tests.cli.journals import closed_session

HEAVY = ("zmq", "rich", "psij", "cloudpickle", "msgpack", "yaml", "scalems_like.client", "scalems_like.protocol")


def imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after ``code`` (which may end in SystemExit, as --help does)."""
    probe = (f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
             "print('\\n'.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["ls", "--help"], ["run", "--help"], ["run"]])
def test_help_version_and_usage_errors_import_nothing_heavy(argv: list[str]) -> None:
    modules = imported_after(f"from scalems_like.cli.main import main; main({argv!r})")
    assert not {name for name in modules if name.split(".")[0] in HEAVY or name.startswith(HEAVY)}


def test_the_package_imports_its_public_names_on_first_use() -> None:
    modules = imported_after("import scalems_like")
    assert "zmq" not in modules and "scalems_like.client.session" not in modules
    code = ("import scalems_like as sl\nfrom scalems_like import *\n"
            "missing = [name for name in sl.__all__ if getattr(sl, name, None) is None]\n"
            "assert not missing, missing\nassert Session is sl.Session and sl.TaskState.DONE == 'DONE'\n"
            "assert set(sl.__all__) <= set(dir(sl))\n"
            "try:\n    sl.Nothing\nexcept AttributeError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "module 'scalems_like' has no attribute 'Nothing'"


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    import scalems_like

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"scalems_like {scalems_like.__version__}"
    assert main(["version", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == scalems_like.__version__


UIDS = ["session.20261123.150100.4242.aa01", "session.20261123.150200.4242.aa02",
        "session.20261124.090000.4242.bb03"]


def test_sessions_is_ls_with_one_set_of_state_names(capsys: pytest.CaptureFixture[str]) -> None:
    closed_session(UIDS[0], {"DONE": 2})
    closed_session(UIDS[1], {"DONE": 1, "FAILED": 1})
    closed_session(UIDS[2], {"CANCELED": 1})
    assert main(["ls", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["sessions", "--json"]) == 0
    captured = capsys.readouterr()
    aliased = json.loads(captured.out)
    for row in [*listed, *aliased]:
        row.pop("age")  # (a time since creation: it moved between the two calls)
    assert aliased == listed
    assert "'sessions' is an old name of 'scalems-like ls'" in captured.err
    assert {row["session"]: row["state"] for row in listed} == {UIDS[0]: "DONE", UIDS[1]: "FAILED",
                                                                UIDS[2]: "CANCELED"}
    assert main(["--help"]) == 0
    assert "sessions" not in capsys.readouterr().out.split("{", 1)[1].split("}", 1)[0].split(",")


def test_a_session_is_named_by_a_unique_prefix_or_last(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for uid in UIDS:
        closed_session(uid, {"DONE": 1})
    assert main(["profile", "last", "--json"]) == 0
    capsys.readouterr()
    assert main(["delete", "last", "--yes", "--json"]) == 0  # the newest
    assert json.loads(capsys.readouterr().out)["session"] == UIDS[2]
    assert main(["delete", "20261123.15", "--yes"]) == 2  # two sessions start so
    error = " ".join(capsys.readouterr().err.split())
    assert f"session '20261123.15': a prefix of 2 sessions ({UIDS[1]}, {UIDS[0]}); give more of the uid" in error
    assert main(["delete", "session.20261123.1501", "--yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["session"] == UIDS[0]
    assert main(["get", "last", "-o", str(tmp_path / "a.tar.gz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["session"] == UIDS[1]
    assert main(["logs", "session.nope"]) == 1
    assert "no session 'session.nope'" in capsys.readouterr().err


def run_command(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalems_like", "run", *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_run_and_submit_say_a_pilots_shape_alike(tmp_path: Path) -> None:
    script = tmp_path / "workflow.py"
    script.write_text("raise SystemExit('the script must not run')\n")
    for command in ("run", "submit"):
        result = subprocess.run([sys.executable, "-m", "scalems_like", command, "--cores", "0", str(script)],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 2 and "argument --cores: '0': expected a whole number >= 1" in result.stderr
    both = run_command("--pilot", "cores=1", "--cores", "2", str(script), cwd=tmp_path)
    assert both.returncode == 2 and "--pilot 'cores=1' and --cores 2: cores given twice" in both.stderr
    script.write_text("import scalems_like as sl\n"
                      "sl.current_session().submit_tasks([sl.TaskDescription(executable='/bin/true')])\n"
                      "(pilot,) = sl.current_session().pilots\n"
                      "print('shape', pilot.description.cores, pilot.description.runtime)\n")
    old = run_command("--pilot", "cores=1,runtime=120", str(script), cwd=tmp_path)
    assert old.returncode == 0, old.stderr
    assert "shape 1 120.0" in old.stdout and "note: --pilot is deprecated; say --cores 1 --runtime 120" in old.stderr
    new = run_command("--cores", "1", "--runtime", "120", str(script), cwd=tmp_path)
    assert new.returncode == 0 and "shape 1 120.0" in new.stdout and "deprecated" not in new.stderr, new.stderr


def with_stderr_on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the command with its stderr on a pseudo-terminal (stdout a pipe): (exit code, stdout, the terminal's
    text)."""
    import os
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "scalems_like", *argv], stdout=subprocess.PIPE,
                               stderr=terminal, cwd=cwd, env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # (EIO: the command ended, the terminal's other side is closed)
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout=60), out, shown.decode(errors="replace")


def test_slow_commands_show_that_they_work_on_a_terminal_only(tmp_path: Path) -> None:
    closed_session(UIDS[0], {"DONE": 1})
    code, out, shown = with_stderr_on_a_terminal(["get", "last", "-o", "a.tar.gz", "--json"], tmp_path)
    assert code == 0 and json.loads(out)["session"] == UIDS[0]
    assert f"archiving {UIDS[0]}" in shown  # the spinner's text, on the terminal
    piped = subprocess.run([sys.executable, "-m", "scalems_like", "get", "last", "-o", "b.tar.gz", "--json"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert piped.returncode == 0 and piped.stderr == ""  # no terminal: nothing extra


def test_the_parsers_copies_of_engine_names_match_the_engine() -> None:
    from scalems_like.cli import commands
    from scalems_like.client import cache
    from scalems_like.protocol import curve

    assert commands.INSECURE_VARIABLE == curve.INSECURE_VARIABLE and commands.CACHE_DIRECTORY == cache.DIRECTORY
