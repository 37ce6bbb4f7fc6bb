"""The same workflow on both backends, side by side: native (scalems_like's agent) and radical (RADICAL-Pilot).

    python benchmarks/backends.py [--executables 20] [--functions 100] [--json]

Each backend: a 2-core pilot on this machine (``local``; ``local.localhost`` for RP), timed from submission to
ACTIVE; then the workflow (N executables ``/bin/echo`` and M function tasks, submitted at once), timed from
submission to the last result, with its tasks/s; then ``close()``. The results must be the same on both.
Needs ``pip install 'scalems_like[radical]'``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import scalems_like as sl

BACKENDS = {"native": "local", "radical": "local.localhost"}


def square(x: int) -> int:
    return x * x


def run(backend: str, executables: int, functions: int) -> dict[str, Any]:
    started = time.perf_counter()
    with sl.Session(backend=backend, journal=False) as session:
        pilot = session.submit_pilot(sl.PilotDescription(resource=BACKENDS[backend], cores=2, runtime=900))
        pilot.wait("ACTIVE", timeout=600)
        active = time.perf_counter()
        tasks = session.submit_tasks(
            [sl.TaskDescription(executable="/bin/echo", arguments=[str(i)]) for i in range(executables)]
            + [sl.TaskDescription(function=square, args=(i,)) for i in range(functions)])
        session.wait_tasks(tasks, timeout=1800)
        finished = time.perf_counter()
        results = [task.stdout if task.description.executable else task.result() for task in tasks]
        failed = [task for task in tasks if task.state is not sl.TaskState.DONE]
    closed = time.perf_counter()
    return {"backend": backend, "to_active_s": active - started, "workflow_s": finished - active,
            "tasks_per_s": len(tasks) / (finished - active), "close_s": closed - finished, "failed": len(failed),
            "results": results}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--executables", type=int, default=20)
    options.add_argument("--functions", type=int, default=100)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    runs = [run(backend, arguments.executables, arguments.functions) for backend in BACKENDS]
    same = runs[0]["results"] == runs[1]["results"]
    if arguments.json:
        print(json.dumps({"runs": [{k: v for k, v in r.items() if k != "results"} for r in runs],
                          "same_results": same}, indent=2))
        return
    print(f"{arguments.executables} executables + {arguments.functions} functions, 2-core pilot; same results on "
          f"both: {'yes' if same else 'NO'}")
    print(f"{'backend':8} {'to ACTIVE':>10} {'workflow':>10} {'tasks/s':>9} {'close':>8} {'failed':>7}")
    for r in runs:
        print(f"{r['backend']:8} {r['to_active_s']:9.1f}s {r['workflow_s']:9.2f}s {r['tasks_per_s']:9.1f} "
              f"{r['close_s']:7.1f}s {r['failed']:7d}")


if __name__ == "__main__":
    main()
