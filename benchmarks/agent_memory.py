"""Agent and client memory when many tasks are submitted at once, on a 2-core local pilot.

    python benchmarks/agent_memory.py [--tasks 50000] [--json]

``--tasks`` no-op function tasks are submitted in one call and waited for. Reported: the agent's resident memory
once ACTIVE and its peak (``VmRSS`` and ``VmHWM`` of ``/proc/AGENT_PID/status``, read before the pilot ends), the
client's peak (``VmHWM`` of this process) and tasks/s. The agent holds at most its task window (see README,
*Flow control*): its peak should not grow with ``--tasks``. ``SCALEMS_LIKE_DATA_DIR`` is a temporary directory
(removed at the end) unless set.
"""

from __future__ import annotations

import argparse
import json
import time

from data_dir import in_data_dir

import scalems_like as sl


def noop() -> None:
    return None


def status_kib(pid: int | str, key: str) -> int:
    """A ``kB`` line of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    raise SystemExit(f"/proc/{pid}/status has no {key}")


def measure(count: int) -> dict[str, float]:
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=3600))
        pilot.wait("ACTIVE", timeout=120)
        if pilot.agent_pid is None:
            raise SystemExit("the agent did not say its process id")
        agent = pilot.agent_pid
        agent_start = status_kib(agent, "VmRSS")
        start = time.perf_counter()
        tasks = session.submit_tasks([sl.TaskDescription(function=noop) for _ in range(count)])
        session.wait_tasks(tasks)
        elapsed = time.perf_counter() - start
        agent_peak = status_kib(agent, "VmHWM")  # (the agent still runs: the session closes below)
        bad = [task for task in tasks if task.state is not sl.TaskState.DONE]
        if bad:
            raise SystemExit(f"{len(bad)} tasks did not succeed, e.g. {bad[0]}: {bad[0].reason}")
    return {
        "tasks": count,
        "agent_start_rss_mb": agent_start / 1024,
        "agent_peak_rss_mb": agent_peak / 1024,
        "client_peak_rss_mb": status_kib("self", "VmHWM") / 1024,
        "tasks_per_s": count / elapsed,
    }


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--tasks", type=int, default=50000)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    results = in_data_dir(lambda: measure(arguments.tasks))
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{arguments.tasks} no-op function tasks submitted at once to a 2-core local pilot:")
    print(f"  agent RSS once ACTIVE   {results['agent_start_rss_mb']:8.1f} MiB")
    print(f"  agent peak RSS (VmHWM)  {results['agent_peak_rss_mb']:8.1f} MiB")
    print(f"  client peak RSS (VmHWM) {results['client_peak_rss_mb']:8.1f} MiB")
    print(f"  tasks                   {results['tasks_per_s']:8.0f} /s")


if __name__ == "__main__":
    main()
