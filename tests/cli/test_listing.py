"""``scalems-like ls`` / ``sessions``: newest first, the same order on every call, ids whole without a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scalems_like.launcher.record import newest_first
from scalems_like.record.journal import Journal, journal_path

OLDEST_FIRST = [f"session.20261123.15{minute:02d}00.4242.ab{minute:02d}" for minute in (1, 2, 3, 4)]


def scalems_like(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it in a pipe (stdout is no terminal)."""
    return subprocess.run([sys.executable, "-m", "scalems_like", *argv], capture_output=True, text=True,
                          timeout=60, check=True)


def make_journals() -> None:
    """Four closed sessions; the oldest has the newest directory time (as reading it would have left it)."""
    for number, uid in enumerate(OLDEST_FIRST):
        journal = Journal.create(uid, {"uid": uid, "created": f"2026-11-23 15:0{number + 1}:00"})
        journal.set("state", "closed")
        journal.close()
        stamp = 1_900_000_000 - 100 * number  # newer session, older directory time
        os.utime(journal_path(uid).parent, (stamp, stamp))


def test_uids_sort_by_the_time_they_carry() -> None:
    same_second = ["session.20261123.150000.17.aaaa", "session.20261123.150000.9.bbbb"]
    assert newest_first([*OLDEST_FIRST, *same_second, "not-a-session-uid"]) == [
        *reversed(OLDEST_FIRST), *sorted(same_second, reverse=True), "not-a-session-uid"]


def test_ls_and_sessions_keep_newest_first_after_reading_the_journals() -> None:
    make_journals()
    expected = list(reversed(OLDEST_FIRST))
    for _call in range(3):  # each call reads every journal (and so touches its directory)
        assert [row["session"] for row in json.loads(scalems_like("ls", "--json").stdout)] == expected
        assert [row["session"] for row in json.loads(scalems_like("sessions", "--json").stdout)] == expected


def test_tables_print_whole_ids_on_one_line_without_a_terminal() -> None:
    make_journals()
    for command in ("ls", "sessions"):
        lines = scalems_like(command).stdout.splitlines()
        rows = [line for line in lines if "session.2026" in line]
        assert [next(word for word in line.split() if word.startswith("session.")) for line in rows] == \
            list(reversed(OLDEST_FIRST)), "\n".join(lines)


def test_logs_of_a_task_name_its_files_whole(tmp_path: Path) -> None:
    import scalems_like as sl

    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(resource="local", cores=1, runtime=120))
        (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/echo", arguments=["hello"])])
        assert task.result(timeout=120) == 0
    output = scalems_like("logs", session.uid, "--task", task.uid).stdout
    journaled, *headers = [line for line in output.splitlines() if line.startswith("==> ")]
    assert journaled == f"==> task {task.uid} (the session's journal) <=="
    assert headers and all(line.endswith(" <==") and f"/{session.uid}/pilot.0000/tasks/{task.uid}/" in line
                           for line in headers), output
    assert "hello" in output
