"""Bulk submission through apps: does submitting N tasks take less time than running them?

    python benchmarks/workflow.py [--tasks 100000] [--json]

A 2-core local pilot; ``square.map(range(N))`` (no cache: ``cache=False``) — submit time (the call returns) against
run time (the last result in hand after the call returned). Target: submit ≤ run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import time

import scalems_like as sl


@sl.function_app(cache=False)
def square(x: int) -> int:
    return x * x


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--tasks", type=int, default=100_000)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(cores=2, runtime=900)).wait("ACTIVE", timeout=60)
        start = time.perf_counter()
        futures = square.map(range(arguments.tasks))
        submitted = time.perf_counter()
        concurrent.futures.wait(futures)
        finished = time.perf_counter()
        assert sum(future.result() for future in futures) == sum(i * i for i in range(arguments.tasks))
    results = {"tasks": arguments.tasks, "submit_s": submitted - start, "run_after_submit_s": finished - submitted,
               "tasks_per_s": arguments.tasks / (finished - start)}
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{arguments.tasks} function tasks through square.map: submitted in {results['submit_s']:.2f} s, "
          f"all results {results['run_after_submit_s']:.2f} s later ({results['tasks_per_s']:.0f} tasks/s overall); "
          f"submit ≤ run: {'yes' if results['submit_s'] <= results['run_after_submit_s'] else 'NO'}")


if __name__ == "__main__":
    main()
