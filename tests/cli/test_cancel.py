"""``scalems-like cancel`` of an interactive session on ``local``, with real processes.

A ``scalems-like run`` client is killed with SIGKILL while its tasks run: its pilot lives on (it runs in a session
of its own and waits for a client for its grace period). ``cancel`` must settle the session: pilot and tasks end
CANCELED in the journal with the reason, the agent and its tasks are gone, ``ls`` says canceled, and
``delete`` works.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from scalems_like.cli.console import progress_steps
from scalems_like.record.journal import Journal, journal_path
from tests.adapters.conftest import squeue_state
from tests.cli.runs import session_processes, start_sleepers
from tests.processes import wait_until

SLEEP = ["/bin/sleep", f"93.{os.getpid()}"]  # (a command line no other test, nor another run, uses: found by ps)
REASON = "canceled by `scalems-like cancel` after the client was gone"


def sleeping_tasks() -> int:
    listing = subprocess.run(["ps", "-wweo", "args="], capture_output=True, text=True, check=True).stdout
    return sum(line.strip() == " ".join(SLEEP) for line in listing.splitlines())


def start_and_kill_run(tmp_path: Path, tasks: int, resource: str = "local") -> str:
    """``scalems-like run`` of ``tasks`` long sleeps on a 2-core pilot, SIGKILLed once two run; its uid."""
    run, uid = start_sleepers(tmp_path, SLEEP, tasks, ["--resource", resource, "--cores", "2", "--runtime", "300"],
                              stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: sleeping_tasks() == 2, timeout=120, what="two tasks running")
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
    return uid


def listed_state(uid: str) -> tuple[str, list[str]]:
    """(the session's state, lower case; its pilots' states) as ``scalems-like ls --json`` has them."""
    (row,) = [row for row in json.loads(scalems_like("ls", "--json").stdout) if row["session"] == uid]
    return row["state"].lower(), [pilot["state"] for pilot in row["pilots"]]


def scalems_like(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalems_like", *arguments], capture_output=True, text=True,
                          timeout=120)


def test_cancel_settles_a_session_whose_client_was_killed(tmp_path: Path) -> None:
    uid = start_and_kill_run(tmp_path, tasks=6)
    assert any("-m scalems_like.agent" in args for args in session_processes(uid).values())  # the pilot lives on
    assert listed_state(uid) == ("interrupted", ["ACTIVE"])

    canceled = scalems_like("cancel", uid)
    assert canceled.returncode == 0, canceled.stdout + canceled.stderr
    # no terminal: a line per step, then what it did
    assert f"{uid}: no client holds it: reattaching to its pilots to cancel them" in canceled.stderr
    assert f"{uid} (interrupted): canceled 1 pilot(s) and 6 task(s)" in canceled.stderr.lower(), canceled.stderr
    journal = Journal.open(uid)
    try:
        assert journal.counts() == {"CANCELED": 6}
        ((_uid, _description, _resource, _sandbox, _batch, state, failure),) = journal.pilots()
        assert (state, failure) == ("CANCELED", REASON)
        reasons = {journal.task_updates(task)[-1]["reason"] for task, _wire in journal.tasks()}
        # each state change once: the agent's journal, read again by the reattach, adds no copies
        histories = {tuple(update["state"] for update in journal.task_updates(task)) for task, _ in journal.tasks()}
        assert histories == {("SUBMITTED", "QUEUED", "RUNNING", "CANCELED"), ("SUBMITTED", "QUEUED", "CANCELED")}, \
            histories
        assert all(REASON in reason for reason in reasons), reasons
        assert journal.info()["state"] == "canceled"
    finally:
        journal.connection.close()
    wait_until(lambda: session_processes(uid) == {}, timeout=30, what="agent, workers and tasks ended")

    assert listed_state(uid) == ("canceled", ["CANCELED"])
    status = scalems_like("status", uid)
    assert "interactive session: canceled" in status.stdout.lower(), status.stdout + status.stderr
    again = scalems_like("cancel", uid)
    assert again.returncode == 0 and "nothing to cancel" in again.stderr, again.stderr
    deleted = scalems_like("delete", uid, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not journal_path(uid).exists()


LIVE_CLIENT = """
import sys
import time
import scalems_like as sl
with sl.Session() as session:
    pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=300))
    tasks = session.submit_tasks([sl.TaskDescription(executable=sys.argv[1], arguments=[sys.argv[2]])
                                  for _ in range(3)])
    while sum(task.state is sl.TaskState.RUNNING for task in tasks) < 2:
        time.sleep(0.05)
    print(session.uid, flush=True)
    pilot.wait(timeout=120)
    print(pilot.state.value, pilot.failure, flush=True)
    print(" ".join(sorted({task.state.value for task in tasks})), flush=True)
"""


def test_cancel_of_a_session_whose_client_lives_asks_that_client_to_cancel_and_everything_ends_canceled() -> None:
    """The live client carries the cancel out itself (record/cancel_request.py): its pilot and tasks end CANCELED
    saying who asked, not FAILED under the batch job's SIGTERM."""
    client = subprocess.Popen([sys.executable, "-c", LIVE_CLIENT, *SLEEP], stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        uid = client.stdout.readline().strip()
        canceled = scalems_like("cancel", uid)
        assert canceled.returncode == 0, canceled.stderr
        assert canceled.stderr.strip().endswith(": its client canceled 1 pilot(s) and their tasks"), canceled.stderr
        assert "reattaching" not in canceled.stderr
        out, _ = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    pilot_line, task_line = out.strip().splitlines()
    assert client.returncode == 0 and pilot_line.startswith("CANCELED canceled by `scalems-like cancel` (pid "), out
    assert task_line == "CANCELED", out
    journal = Journal.open(uid)
    try:
        assert journal.info()["state"] == "closed" and set(journal.counts()) == {"CANCELED"}
    finally:
        journal.connection.close()
    wait_until(lambda: session_processes(uid) == {}, timeout=30, what="agent, workers and tasks ended")


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm")
def test_cancel_settles_a_slurm_session_whose_client_was_killed(tmp_path: Path) -> None:
    uid = start_and_kill_run(tmp_path, tasks=4, resource="slurm")
    journal = Journal.open(uid)
    try:
        ((*_, batch_id, _state, _failure),) = journal.pilots()
    finally:
        journal.connection.close()
    assert batch_id and squeue_state(batch_id) == "RUNNING"  # the pilot's job outlives its client

    canceled = scalems_like("cancel", uid)
    assert canceled.returncode == 0, canceled.stdout + canceled.stderr
    assert f"{uid} (interrupted): canceled 1 pilot(s) and 4 task(s)" in canceled.stderr.lower(), canceled.stderr
    journal = Journal.open(uid)
    try:
        assert journal.counts() == {"CANCELED": 4} and journal.info()["state"] == "canceled"
        assert [(row[5], row[6]) for row in journal.pilots()] == [("CANCELED", REASON)]
    finally:
        journal.connection.close()
    wait_until(lambda: squeue_state(batch_id) in ("", "COMPLETED", "CANCELLED"), timeout=60,
               what=f"batch job {batch_id} ended")
    wait_until(lambda: sleeping_tasks() == 0, timeout=30, what="the tasks ended")
    assert scalems_like("delete", uid, "--yes").returncode == 0


STARTING_CLIENT = """
import sys
import time
import scalems_like as sl
session = sl.Session()
session.submit_pilot(sl.PilotDescription(cores=2, runtime=300, pre_bootstrap=["sleep 4"]))
session.submit_tasks([sl.TaskDescription(executable=sys.argv[1], arguments=[sys.argv[2]]) for _ in range(3)])
print(session.uid, flush=True)
time.sleep(600)
"""


def journaled(uid: str) -> tuple[int, str | None]:
    """(tasks, the pilot's batch id) as the session's journal has them so far."""
    journal = Journal.open(uid)
    try:
        pilots = journal.pilots()
        return sum(1 for _ in journal.tasks()), pilots[0][4] if pilots else None
    finally:
        journal.connection.close()


@pytest.mark.parametrize("agent", ["still-bootstrapping", "started-after-the-client-died"])
def test_cancel_settles_a_session_whose_client_died_before_its_pilot_was_active(agent: str) -> None:
    client = subprocess.Popen([sys.executable, "-c", STARTING_CLIENT, *SLEEP], stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        uid = client.stdout.readline().strip()
        wait_until(lambda: journaled(uid)[0] == 3 and journaled(uid)[1] is not None, timeout=30,
                   what="the pilot's batch id and the tasks in the journal")
    finally:
        client.kill()
        client.communicate()
    (sandbox,) = (Path(os.environ["SCALEMS_LIKE_DATA_DIR"]) / "sandbox" / uid).glob("pilot.*")
    if agent == "started-after-the-client-died":  # its agent heartbeats, waiting for a client
        wait_until(lambda: (sandbox / "agent.alive").exists(), timeout=60, what="the agent running")
    canceled = scalems_like("cancel", uid)
    assert canceled.returncode == 0, canceled.stdout + canceled.stderr
    assert f"{uid} (interrupted): canceled 1 pilot(s) and 3 task(s)" in canceled.stderr.lower(), canceled.stderr
    journal = Journal.open(uid)
    try:
        assert journal.counts() == {"CANCELED": 3}
        assert [(row[5], row[6]) for row in journal.pilots()] == [("CANCELED", REASON)]
    finally:
        journal.connection.close()
    wait_until(lambda: session_processes(uid) == {}, timeout=30, what="bootstrap, agent and workers ended")


def test_progress_steps_spin_on_a_terminal_print_lines_elsewhere_and_above_a_spinner_that_turns() -> None:
    piped = Console(file=io.StringIO(), width=100_000)
    with progress_steps(piped, "first") as report:
        report("step one")
        report("step two")
    assert piped.file.getvalue() == "step one\nstep two\n"  # type: ignore[attr-defined]
    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    with progress_steps(terminal, "first") as report:
        report("step one")
    spun = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "⠋\x1b[0m step one" in spun  # the spinner's text
    with terminal.status("the command's own spinner"), progress_steps(terminal, "first") as report:
        report("step [one]")
    printed = terminal.file.getvalue()[len(spun):]  # type: ignore[attr-defined]
    assert "step [one]\n" in printed and "⠋\x1b[0m step [one]" not in printed  # a line, above the spinner


def test_cancel_leaves_a_pilot_whose_agent_had_died_its_own_end_and_settles_the_session(tmp_path: Path) -> None:
    """Client and agent both killed: the pilot ended before the cancel, so it keeps that end (FAILED, saying its
    agent ended) and so do its tasks; the session is canceled all the same, and can be deleted."""
    uid = start_and_kill_run(tmp_path, tasks=6)
    (agent,) = [pid for pid, args in session_processes(uid).items() if "-m scalems_like.agent" in args]
    os.kill(agent, signal.SIGKILL)
    wait_until(lambda: session_processes(uid) == {} and sleeping_tasks() == 0, timeout=30,
               what="the agent's workers and tasks ended with it")
    canceled = scalems_like("cancel", uid)
    assert canceled.returncode == 0, canceled.stderr
    assert f"{uid} (interrupted): canceled 0 pilot(s) and 0 task(s) (its other tasks: 6 failed)" in \
        canceled.stderr.lower(), canceled.stderr
    journal = Journal.open(uid)
    try:
        ((*_, state, failure),) = journal.pilots()
        assert state == "FAILED" and failure.startswith(f"its agent (process {agent} on ")
        assert journal.counts() == {"FAILED": 6} and journal.info()["state"] == "canceled"
    finally:
        journal.connection.close()
    assert listed_state(uid)[1] == ["FAILED"]
    assert scalems_like("delete", uid, "--yes").returncode == 0


def test_a_new_run_mentions_a_killed_runs_pilot_until_it_is_canceled(tmp_path: Path) -> None:
    uid = start_and_kill_run(tmp_path, tasks=2)
    (tmp_path / "empty.py").write_text("print('nothing to run')\n")

    def notes() -> list[str]:
        ran = scalems_like("run", str(tmp_path / "empty.py"))
        assert ran.returncode == 0, ran.stderr
        return [line for line in ran.stderr.splitlines() if line.startswith("note: session")]
    assert notes() == [f"note: session {uid} (interrupted) may still hold pilot.0000 on local: its agents wait for "
                       f"a client until their grace period ends; `scalems-like reattach {uid}` collects its results, "
                       f"`scalems-like cancel {uid}` ends it"]
    assert scalems_like("cancel", uid).returncode == 0
    assert notes() == []
