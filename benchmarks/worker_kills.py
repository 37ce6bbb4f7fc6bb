"""Workers killed under a running workload: how many tasks end DONE, and why the others failed.

    python benchmarks/worker_kills.py [--tasks 1500] [--cores 4] [--kills 4] [--retries 10] [--json]

A local pilot of ``--cores`` workers runs ``--tasks`` function tasks (each sleeps 10 ms, ``retries`` as given);
once they run, a worker process is SIGKILLed every 0.5 s, ``--kills`` times (the agent's workers,
below its node manager, found in /proc). Prints the final states, the distinct failure reasons, how long
after each loss its replacement said hello, the pilot's state and the wall time. Runs in a temporary config/data
directory.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from pilot_processes import worker_pids


def nap() -> int:
    import time

    time.sleep(0.01)
    return 1


def replacement_delays(rows: list[dict[str, object]]) -> list[float]:
    """Seconds from each worker's loss (the agent's event) to the hello of the worker that replaced it."""
    lost = [float(str(row["time"])) for row in rows if row["component"] == "worker" and row["event"] == "lost"]
    replacements = {str(row["uid"]) for row in rows if row["component"] == "worker" and row["event"] == "replace"}
    hellos = sorted(float(str(row["time"])) for row in rows if row["component"] == "worker"
                    and row["event"] == "start" and str(row["uid"]) in replacements)
    return [round(hello - death, 3) for death, hello in zip(sorted(lost), hellos, strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--cores", type=int, default=4)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--retries", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="worker-kills-"))
    os.environ["SCALEMS_LIKE_CONFIG_DIR"] = str(base / "config")
    os.environ["SCALEMS_LIKE_DATA_DIR"] = str(base / "data")
    try:
        result = run(arguments)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if arguments.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def run(arguments: argparse.Namespace) -> dict[str, object]:
    import scalems_like as sl

    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=arguments.cores, runtime=600))
        pilot.wait("ACTIVE", timeout=120)
        assert pilot.agent_pid is not None
        started = time.monotonic()
        tasks = session.submit_tasks([sl.TaskDescription(function=nap, retries=arguments.retries)
                                      for _ in range(arguments.tasks)])
        while not any(task.state is sl.TaskState.DONE for task in tasks):
            time.sleep(0.05)
        killed = []
        for _ in range(arguments.kills):
            pids = worker_pids(pilot.agent_pid)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.5)
        for task in tasks:
            task.wait(timeout=600)
        wall = time.monotonic() - started
        states = collections.Counter(task.state.value for task in tasks)
        reasons = collections.Counter((task.reason or "")[:160] for task in tasks
                                      if task.state is not sl.TaskState.DONE)
        rows = session.profile(frame=False)
        result = {"tasks": arguments.tasks, "cores": arguments.cores, "kills": len(killed),
                  "replaced_within_s": replacement_delays(rows),
                  "states": dict(states), "reasons": dict(reasons), "pilot": pilot.state.value,
                  "pilot_failure": pilot.failure, "wall_s": round(wall, 1),
                  "workers_after": len(worker_pids(pilot.agent_pid)) if pilot.agent_pid else 0}
    return result


if __name__ == "__main__":
    main()
