"""A node's launch path: executable tasks (``/bin/true``) on a 2-core local pilot, beside two bare ``Popen`` loops
measured in the same run.

    python benchmarks/executables.py [--tasks 4000] [--rounds 3] [--json]

Each round runs ``--tasks`` executables on the pilot (2 workers), then two processes that each loop
``subprocess.Popen(["/bin/true"]).wait()`` (``--tasks`` / 2 each, started together): the limit of this machine's two
cores at that moment. The ratio of the two is printed per round and for the best round (target ≥ 60 %). The
pilot's first round warms it up and is not counted. With ``SCALEMS_LIKE_PROFILE_AGENT=1`` the agent writes
``PILOT_SANDBOX/agent.prof`` (cProfile).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

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


def two_popen_loops(count: int) -> float:
    """Launches/s of two processes each looping Popen+wait of /bin/true ``count`` // 2 times, started together
    (the sum of the two loops' rates)."""
    loops = [subprocess.Popen([sys.executable, "-c", LOOP, str(count // 2)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for loop in loops:  # both interpreters are up before either starts its loop
        assert loop.stdout is not None and loop.stdout.readline() == "ready\n"
    for loop in loops:
        assert loop.stdin is not None
        loop.stdin.write("go\n")
        loop.stdin.flush()
    rates = [float(loop.communicate()[0]) for loop in loops]
    if any(loop.returncode for loop in loops):
        raise SystemExit("a bare Popen loop failed")
    return sum(rates)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--tasks", type=int, default=4000)
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    rounds: list[dict[str, float]] = []
    with sl.Session() as session:
        pilot_start(session)
        run_tasks(session, [sl.TaskDescription(executable="/bin/true") for _ in range(200)])  # warm up
        for _ in range(arguments.rounds):
            pilot = run_tasks(session, [sl.TaskDescription(executable="/bin/true") for _ in range(arguments.tasks)])
            limit = two_popen_loops(arguments.tasks)
            rounds.append({"executables_per_s": pilot, "two_popen_loops_per_s": limit, "ratio": pilot / limit})
    best = max(rounds, key=lambda measured: measured["ratio"])
    if arguments.json:
        print(json.dumps({"tasks": arguments.tasks, "best": best, "rounds": rounds}, indent=2))
        return
    for number, measured in enumerate(rounds, 1):
        print(f"round {number}: executables {measured['executables_per_s']:6.0f} /s, two bare Popen loops "
              f"{measured['two_popen_loops_per_s']:6.0f} /s: {100 * measured['ratio']:.0f} %")
    print(f"best: {100 * best['ratio']:.0f} % of two bare Popen loops (target ≥ 60 %; {arguments.tasks} tasks a round)")


if __name__ == "__main__":
    main()
