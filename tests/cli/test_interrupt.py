"""Ctrl-C during ``scalems-like run`` on ``local``: the terminal's SIGINT reaches the client alone, which cancels.

A terminal sends SIGINT to its foreground process group; the test starts ``run`` as the leader of a group of its
own and signals that group, as the terminal would.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from scalems_like.record.journal import Journal
from tests.cli.runs import session_processes, start_sleepers
from tests.processes import processes, wait_until

SLEEP = ["/bin/sleep", "91.75"]  # (a command line no other test uses: found by ps below)


@pytest.mark.parametrize("then_sigterm", [False, True], ids=["ctrl-c", "ctrl-c-then-sigterm"])
def test_ctrl_c_cancels_the_session_and_exits_130(tmp_path: Path, then_sigterm: bool) -> None:
    """With ``then_sigterm``: a SIGTERM (a batch system's, say) while the session cancels and closes changes
    nothing: the close goes on to its end (it raised out of the close: a traceback, exit 1, the pilot orphaned)."""
    run, uid = start_sleepers(tmp_path, SLEEP, 4, ["--cores", "2", "--runtime", "300"], stdout=subprocess.PIPE,
                              start_new_session=True)
    try:
        wait_until(lambda: len(processes(" ".join(SLEEP))) == 2, timeout=120, what="two tasks running")
        (agent,) = [pid for pid, args in session_processes(uid).items() if "-m scalems_like.agent" in args]
        assert os.getsid(agent) != run.pid  # the pilot's agent is not in the terminal's session
        os.killpg(run.pid, signal.SIGINT)
        for line in run.stderr if then_sigterm else []:
            if "interrupted (Ctrl-C)" in line:  # the cancel and the close have begun
                os.kill(run.pid, signal.SIGTERM)
                break
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 130, out + err
    assert then_sigterm or "interrupted (Ctrl-C): canceling the session's tasks and pilots" in err
    assert not then_sigterm or "SIGTERM while the session closes: the close goes on" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    journal = Journal.open(uid)
    try:
        assert journal.counts() == {"CANCELED": 4}
        assert [row[5] for row in journal.pilots()] == ["CANCELED"]
    finally:
        journal.connection.close()
    assert "│ CANCELED │     4 │" in out
    assert session_processes(uid) == {}  # no agent, worker or task left
