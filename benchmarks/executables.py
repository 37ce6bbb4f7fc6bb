"""A node's launch path: executable tasks (``/bin/true``) beside two bare ``Popen`` loops measured in the same run.

    python benchmarks/executables.py [--tasks 4000] [--rounds 3] [--json]

Each round runs, one after the other:

- ``pilot``: ``--tasks`` executables on a 2-core local pilot (2 workers; the client and the agent share the
  two cores with them);
- ``launch path``: two processes that each start ``--tasks`` / 2 tasks, one after the other, with the code a
  worker runs for each (its sandbox, its files, the spawn, the pidfd, the reaping and the final update), in
  sandboxes on the file system of the pilots' sandboxes;
- ``two bare Popen loops``: two processes that each loop ``subprocess.Popen(["/bin/true"]).wait()`` ``--tasks`` / 2
  times, started together: the limit of this machine's two cores at that moment.

The ratios to the bare loops of the same round are printed per round, and their medians (target ≥ 60 %). The
pilot's first tasks warm it up and are not counted. With ``SCALEMS_LIKE_PROFILE_AGENT=1`` the agent writes
``PILOT_SANDBOX/agent.prof``, with ``SCALEMS_LIKE_PROFILE_WORKER=1`` each worker ``PILOT_SANDBOX/workers/UID.prof``
(cProfile).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from throughput import pilot_start, run_tasks

import scalems_like as sl

LOOP = """
import subprocess, sys, time
count = int(sys.argv[1])
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
start = time.perf_counter()
for _ in range(count):
    subprocess.Popen(["/bin/true"]).wait()
print(count / (time.perf_counter() - start))
"""


def launch_loop(count: int, directory: str) -> None:
    """One launch-path loop (a process of :func:`two_loops`): ``count`` tasks started and ended as a worker does."""
    from scalems_like.agent.launch import task_environment
    from scalems_like.overlay import execution

    environment = task_environment(dict(os.environ))
    if hasattr(execution, "Launcher"):
        start = execution.Launcher("none", environment).start
    else:  # (a commit before the Launcher, for comparisons)
        def start(task: dict[str, object]) -> object:
            return execution.start_executable(task, "none", environment)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    began = time.perf_counter()
    for number in range(count):
        running = start({"uid": f"task.{number:06d}", "executable": "/bin/true", "arguments": [], "ranks": 1,
                         "sandbox": f"{directory}/task.{number:06d}", "stdout": "stdout", "stderr": "stderr",
                         "stdin": None, "timeout": None, "environment": {}})
        update: dict[str, object] = {}
        running.finish(update)  # type: ignore[union-attr]
        if update["state"] != "DONE":
            raise SystemExit(f"a task of the launch path loop failed: {update}")
    print(count / (time.perf_counter() - began))


def two_loops(count: int, command: list[str]) -> float:
    """Launches/s of two processes that each run ``command`` (a loop of ``count`` // 2 launches), started together
    (the sum of the two loops' rates)."""
    loops = [subprocess.Popen([*command, str(count // 2)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for loop in loops:  # both interpreters are up before either starts its loop
        assert loop.stdout is not None and loop.stdout.readline() == "ready\n"
    for loop in loops:
        assert loop.stdin is not None
        loop.stdin.write("go\n")
        loop.stdin.flush()
    rates = [float(loop.communicate()[0]) for loop in loops]
    if any(loop.returncode for loop in loops):
        raise SystemExit(f"a loop of {command} failed")
    return sum(rates)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--tasks", type=int, default=4000)
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--json", action="store_true")
    options.add_argument("--launch-loop", nargs=2, metavar=("DIRECTORY", "COUNT"), help=argparse.SUPPRESS)
    arguments = options.parse_args()
    if arguments.launch_loop:
        launch_loop(int(arguments.launch_loop[1]), arguments.launch_loop[0])
        return
    rounds: list[dict[str, float]] = []
    with sl.Session() as session:
        pilot, _ = pilot_start(session)
        run_tasks(session, [sl.TaskDescription(executable="/bin/true") for _ in range(200)])  # warm up
        for _ in range(arguments.rounds):
            measured = {"pilot_per_s": run_tasks(
                session, [sl.TaskDescription(executable="/bin/true") for _ in range(arguments.tasks)])}
            with tempfile.TemporaryDirectory(dir=pilot.sandbox) as directory:  # (the sandboxes' file system)
                measured["launch_path_per_s"] = two_loops(
                    arguments.tasks, [sys.executable, __file__, "--launch-loop", directory])
            measured["two_popen_loops_per_s"] = two_loops(arguments.tasks, [sys.executable, "-c", LOOP])
            measured["pilot_ratio"] = measured["pilot_per_s"] / measured["two_popen_loops_per_s"]
            measured["launch_path_ratio"] = measured["launch_path_per_s"] / measured["two_popen_loops_per_s"]
            rounds.append(measured)
    median = {key: statistics.median(measured[key] for measured in rounds) for key in rounds[0]}
    if arguments.json:
        print(json.dumps({"tasks": arguments.tasks, "median": median, "rounds": rounds}, indent=2))
        return
    for number, measured in enumerate(rounds, 1):
        print(f"round {number}: pilot {measured['pilot_per_s']:5.0f} /s ({100 * measured['pilot_ratio']:.0f} %), "
              f"launch path {measured['launch_path_per_s']:5.0f} /s ({100 * measured['launch_path_ratio']:.0f} %), "
              f"two bare Popen loops {measured['two_popen_loops_per_s']:5.0f} /s")
    print(f"median of {arguments.rounds} rounds of {arguments.tasks} tasks, of two bare Popen loops: pilot "
          f"{100 * median['pilot_ratio']:.0f} %, launch path {100 * median['launch_path_ratio']:.0f} % (target ≥ 60 %)")


if __name__ == "__main__":
    main()
