"""How a worker's Launcher starts executables (os.posix_spawn): what each task gets, what it does not inherit from
the worker, where its program is found, and why one could not start."""

from __future__ import annotations

import contextlib
import os
import select
import signal
from pathlib import Path
from typing import Any

from scalems_like.overlay.execution import Launcher, RunningExecutable
from tests.processes import alive, wait_until


def shell_task(sandbox: Path, script: str, **fields: Any) -> dict[str, Any]:
    return {"uid": "t", "executable": "/bin/sh", "arguments": ["-c", script], "sandbox": str(sandbox),
            "ranks": 1, "stdout": "stdout", "stderr": "stderr", "timeout": None, **fields}


def run(launcher: Launcher, task: dict[str, Any]) -> dict[str, Any]:
    """Start ``task``, wait for its end through its pidfd, and return its final update."""
    running = launcher.start(task)
    assert isinstance(running, RunningExecutable), running
    readable, _, _ = select.select([running.pidfd], [], [], 30)
    assert readable == [running.pidfd], "the task did not end within 30 s"
    update: dict[str, Any] = {}
    running.finish(update)
    return update


def test_a_task_leads_its_own_session_with_default_signals_and_only_its_three_files(tmp_path: Path) -> None:
    leaked = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leaked, True)  # (as a C library or a function task might leave one)
    script = (f'[ -e /proc/self/fd/{leaked} ] && echo inherited {leaked} || echo closed; '
              'cut -d " " -f 1,5,6 /proc/$$/stat; grep SigIgn /proc/$$/status; '
              'read line; echo "$line"; echo to-stderr >&2')
    (tmp_path / "input").write_text("from stdin\n")
    try:
        update = run(Launcher("none", {"PATH": "/bin:/usr/bin"}), shell_task(tmp_path / "t", script, stdin=str(
            tmp_path / "input")))
    finally:
        os.close(leaked)
    assert update == {"exit_code": 0, "state": "DONE"}
    closed, ids, ignored, line = (tmp_path / "t" / "stdout").read_text().splitlines()
    assert closed == "closed"  # no descriptor of the worker but the task's three files
    pid, group, session = ids.split()
    assert pid == group == session  # a new session: its process group is what a timeout or a cancel kills
    mask = int(ignored.split()[1], 16)  # (glibc's posix_spawn leaves its own two internal signals, 32 and 33, so)
    assert mask & ~(0b11 << 31) == 0  # Python ignores SIGPIPE and SIGXFSZ; a task ignores no signal
    assert line == "from stdin"
    assert (tmp_path / "t" / "stderr").read_text() == "to-stderr\n"
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o700


def test_the_worker_stays_in_its_directory_and_a_task_runs_in_its_own(tmp_path: Path) -> None:
    here = os.getcwd()
    launcher = Launcher("none", {"PATH": "/bin:/usr/bin"})
    run(launcher, shell_task(tmp_path / "a", "pwd"))
    run(launcher, shell_task(tmp_path / "b", "pwd", working_directory=str(tmp_path)))
    assert os.getcwd() == here
    assert (tmp_path / "a" / "stdout").read_text() == f"{tmp_path / 'a'}\n"
    assert (tmp_path / "b" / "stdout").read_text() == f"{tmp_path}\n"


def program(directory: Path, text: str) -> None:
    directory.mkdir(exist_ok=True)
    path = directory / "greet"
    path.write_text(f"#!/bin/sh\necho {text}\n")
    path.chmod(0o755)


def test_a_program_name_is_found_on_the_task_path_once_and_again_when_it_is_gone(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    program(first, "first")
    program(second, "second")
    launcher = Launcher("none", {"PATH": f"{first}:{second}:/bin:/usr/bin"})
    task = {**shell_task(tmp_path / "1", ""), "executable": "greet", "arguments": []}
    assert run(launcher, task)["state"] == "DONE"
    assert (tmp_path / "1" / "stdout").read_text() == "first\n"
    assert launcher.programs == {("greet", f"{first}:{second}:/bin:/usr/bin"): str(first / "greet")}
    (first / "greet").unlink()  # the place the worker remembers is gone: it looks again
    assert run(launcher, {**task, "sandbox": str(tmp_path / "2")})["state"] == "DONE"
    assert (tmp_path / "2" / "stdout").read_text() == "second\n"
    other = {**task, "sandbox": str(tmp_path / "3"), "environment": {"PATH": str(first)}}  # its own PATH
    program(first, "first again")
    assert run(launcher, other)["state"] == "DONE"
    assert (tmp_path / "3" / "stdout").read_text() == "first again\n"


def files_open_under(directory: Path) -> list[str]:
    """The paths under ``directory`` this process has open (other threads of the test process open and close
    descriptors of their own meanwhile: only these say whether a task's files were closed)."""
    opened = []
    for descriptor in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (closed since the listing)
            target = os.readlink(f"/proc/self/fd/{descriptor}")
            if target.startswith(f"{directory}/"):
                opened.append(target)
    return sorted(opened)


def test_what_cannot_start_says_why_in_its_reason_and_its_stderr(tmp_path: Path) -> None:
    launcher = Launcher("none", {"PATH": str(tmp_path)})
    missing = {**shell_task(tmp_path / "1", ""), "executable": "no-such-program", "arguments": []}
    assert launcher.start(missing) == "cannot start 'no-such-program': No such file or directory"
    assert (tmp_path / "1" / "stderr").read_text() == "cannot start 'no-such-program': No such file or directory\n"
    nowhere = shell_task(tmp_path / "2", "true", working_directory=str(tmp_path / "nowhere"))
    assert launcher.start(nowhere) == "cannot start '/bin/sh': No such file or directory"
    no_input = shell_task(tmp_path / "3", "true", stdin="missing.txt")
    assert launcher.start(no_input) == "cannot start '/bin/sh': No such file or directory"
    not_executable = tmp_path / "data.txt"
    not_executable.write_text("")
    refused = {**shell_task(tmp_path / "4", ""), "executable": str(not_executable), "arguments": []}
    assert launcher.start(refused) == f"cannot start '{not_executable}': Permission denied"
    assert files_open_under(tmp_path) == []  # the files of the tasks that did not start are closed


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    launcher = Launcher("none", {"PATH": "/bin:/usr/bin"})
    running = launcher.start(shell_task(tmp_path / "t", "sleep 300 & echo $!; wait"))
    assert isinstance(running, RunningExecutable)
    output = tmp_path / "t" / "stdout"
    wait_until(lambda: output.read_text().endswith("\n"), what="the task said its child's pid")
    running.terminate("timeout")
    readable, _, _ = select.select([running.pidfd], [], [], 30)
    assert readable == [running.pidfd]
    update: dict[str, Any] = {}
    running.finish(update)
    assert update["state"] == "FAILED" and update["exit_code"] == 128 + signal.SIGTERM
    sleeper = int(output.read_text())
    wait_until(lambda: not alive(sleeper), what=f"the task's child {sleeper} ended with its process group")
