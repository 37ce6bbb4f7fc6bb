"""What durability costs and how fast a client gets back what it missed, on a 2-core local pilot.

    python benchmarks/durability.py [--functions 20000] [--missed 5000] [--json]

1. Journaling cost: function tasks/s in a session with its journal and in one without (``journal=False``),
   measured alternately (twice each, best of each) in the same run; target: the journal costs < 10 %.
2. Reattach time: a client submits ``--missed`` function tasks and is killed with SIGKILL; once its agent has
   finished them all, ``scalems-like reattach SESSION --detach`` runs: command start → every missed result in
   hand (the command's own report), and the same for ``Session.reattach`` inside this process.
3. Restore time: ``Session.reattach`` of the closed ``--functions``-task session of step 1 (one function pickled by
   value, as a script's own functions are): the journal read back, every description and event replayed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import scalems_like as sl
from scalems_like.protocol.records import read_records

CLIENT = textwrap.dedent("""
    import sys
    import scalems_like as sl
    session = sl.Session()
    session.submit_pilot(sl.PilotDescription(cores=2, runtime=600))
    session.submit_tasks([sl.TaskDescription(function=abs, args=(-i,)) for i in range(int(sys.argv[1]))])
    print(session.uid, flush=True)
    sys.stdin.read()
""")


def square(x: int) -> int:
    return x * x


def functions_per_s(journal: bool, count: int) -> tuple[float, str]:
    """Function tasks per second, and the session's uid."""
    with sl.Session(journal=journal) as session:
        session.submit_pilot(sl.PilotDescription(cores=2, runtime=600)).wait("ACTIVE")
        start = time.perf_counter()
        tasks = session.submit_tasks([sl.TaskDescription(function=square, args=(i,)) for i in range(count)])
        session.wait_tasks(tasks)
        elapsed = time.perf_counter() - start
        assert all(task.state is sl.TaskState.DONE for task in tasks)
        if journal:
            assert session._journal is not None and session._journal.flush()
    return count / elapsed, session.uid


def restore_closed(uid: str, count: int) -> float:
    start = time.perf_counter()
    session = sl.Session.reattach(uid)
    elapsed = time.perf_counter() - start
    if len(session.tasks) != count or not all(task.state is sl.TaskState.DONE for task in session.tasks):
        raise SystemExit("Session.reattach of a closed session did not bring back every task")
    session.detach()
    return elapsed


def killed_client(missed: int) -> tuple[str, Path]:
    """A client that submitted ``missed`` tasks, killed; returns once its agent has finished them all."""
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(missed)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    uid = client.stdout.readline().strip()
    while True:  # the agent journals every task it accepted: kill the client once the agent has them all
        sandboxes = list((Path(os.environ["SCALEMS_LIKE_DATA_DIR"]) / "sandbox" / uid).glob("pilot.*"))
        journal = sandboxes[0] / "agent.journal" if sandboxes else None
        if journal is not None and len({update["uid"] for update in read_records(journal)}) >= missed:
            break
        time.sleep(0.05)
    client.kill()
    client.wait()
    while sum(update["state"] == "DONE" for update in read_records(journal)) < missed:
        time.sleep(0.2)
    return uid, journal


def reattach_command(missed: int) -> float:
    uid, _ = killed_client(missed)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "scalems_like", "reattach", uid, "--detach"],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if f"{missed} final" not in result.stderr:
        raise SystemExit(f"reattach did not bring back every result: {result.stderr}")
    with sl.Session.reattach(uid) as session:  # end the pilot
        session.close()
    return elapsed


def reattach_in_process(missed: int) -> float:
    uid, _ = killed_client(missed)
    start = time.perf_counter()
    session = sl.Session.reattach(uid)
    elapsed = time.perf_counter() - start
    if not all(task.state is sl.TaskState.DONE for task in session.tasks) or len(session.tasks) != missed:
        raise SystemExit("Session.reattach did not bring back every result")
    session.close()
    return elapsed


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--functions", type=int, default=20000)
    options.add_argument("--missed", type=int, default=5000)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    os.environ.setdefault("SCALEMS_LIKE_DATA_DIR", tempfile.mkdtemp(prefix="scalems-like-benchmark-"))
    with_journal, without = [], []
    for _ in range(2):
        without.append(functions_per_s(False, arguments.functions)[0])
        rate, journaled = functions_per_s(True, arguments.functions)
        with_journal.append(rate)
    results = {
        "functions_per_s_with_journal": max(with_journal),
        "functions_per_s_without_journal": max(without),
        "reattach_command_s": reattach_command(arguments.missed),
        "reattach_in_process_s": reattach_in_process(arguments.missed),
        "restore_closed_s": restore_closed(journaled, arguments.functions),
    }
    results["journal_cost"] = 1 - results["functions_per_s_with_journal"] / results["functions_per_s_without_journal"]
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"function tasks with journal     {results['functions_per_s_with_journal']:8.0f} /s")
    print(f"function tasks without journal  {results['functions_per_s_without_journal']:8.0f} /s   "
          f"journal costs {100 * results['journal_cost']:.1f} % (target < 10 %)")
    print(f"reattach, {arguments.missed} missed results: `scalems-like reattach --detach` "
          f"{results['reattach_command_s']:.2f} s (command start → all in hand); "
          f"Session.reattach {results['reattach_in_process_s']:.2f} s")
    print(f"restore of a closed session of {arguments.functions} function tasks: {results['restore_closed_s']:.2f} s")


if __name__ == "__main__":
    main()
