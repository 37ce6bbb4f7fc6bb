"""``scalems-like run`` of long sleeps, started as a user starts it, for tests that then kill or interrupt it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any


def session_processes(uid: str) -> dict[int, str]:
    """Command lines by pid of the processes running for session ``uid`` (its sandbox is in their arguments)."""
    listing = subprocess.run(["ps", "-wweo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    found = (line.strip().split(None, 1) for line in listing.splitlines() if uid in line)
    return {int(pid): args for pid, args in found}


def start_sleepers(directory: Path, sleep: list[str], tasks: int, options: list[str],
                   **popen: Any) -> tuple[subprocess.Popen[str], str]:
    """``scalems-like run OPTIONS sleepers.py`` in ``directory``, its script submitting ``tasks`` tasks running
    ``sleep`` (a command line the test alone uses); (the process, its session uid) once it printed the uid."""
    script = directory / "sleepers.py"
    script.write_text("import scalems_like as sl\n"
                      f"sl.current_session().submit_tasks([sl.TaskDescription(executable={sleep[0]!r}, "
                      f"arguments=[{sleep[1]!r}]) for _ in range({tasks})])\n")
    run = subprocess.Popen([sys.executable, "-m", "scalems_like", "run", *options, str(script)],
                           stderr=subprocess.PIPE, text=True, cwd=directory, **popen)
    assert run.stderr is not None
    for line in run.stderr:  # (printed before the script runs)
        found = re.match(r"session (session\.\S+): pilot", line)
        if found:
            return run, found.group(1)
    run.kill()
    run.communicate()
    raise AssertionError("`scalems-like run` printed no session line")
