"""How fast a local pilot's workers start, and what they hold in memory.

    python benchmarks/worker_start.py [--workers 128] [--json]

A local pilot of ``--workers`` cores (one worker per core: the node manager forks them from its fork server, which
imported what a worker runs once) is submitted; reported: seconds from submission to ACTIVE and to every worker
serving (``pilot.wait_ready()``), and the workers' memory — the sum of their RSS (pages they map, shared ones
counted in each) and of their PSS (each shared page divided among its users: what they really cost), from
``/proc/PID/smaps_rollup``. Beside them, this machine's own limit measured in the same run: the time to start
``--workers`` bare Python interpreters that import ``zmq`` (what one process per worker costs at least), and one
such interpreter's RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from data_dir import in_data_dir
from pilot_processes import memory_kib, worker_pids

import scalems_like as sl

PROBE = "import zmq, sys; sys.stdout.write(open('/proc/self/status').read())"


def bare_interpreters(count: int) -> tuple[float, int]:
    """Seconds to start ``count`` interpreters importing zmq (two at a time, as this 2-core machine allows), and
    one's RSS in KiB."""
    start = time.perf_counter()
    outputs = []
    for _ in range(0, count, 2):
        pair = [subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outputs += [process.communicate()[0] for process in pair]
    elapsed = time.perf_counter() - start
    rss = next(int(line.split()[1]) for line in outputs[0].splitlines() if line.startswith("VmRSS:"))
    return elapsed, rss


def measure(workers: int) -> dict[str, float]:
    with sl.Session() as session:
        start = time.perf_counter()
        pilot = session.submit_pilot(sl.PilotDescription(cores=workers, runtime=600))
        pilot.wait("ACTIVE", timeout=300)
        active = time.perf_counter() - start
        pilot.wait_ready(timeout=300)
        ready = time.perf_counter() - start
        assert pilot.agent_pid is not None
        pids = worker_pids(pilot.agent_pid)
        if len(pids) != workers:
            raise SystemExit(f"found {len(pids)} worker processes, expected {workers}")
        memory = [memory_kib(pid) for pid in pids]
    bare_seconds, bare_rss = bare_interpreters(workers)
    return {
        "workers": workers,
        "active_s": round(active, 2),
        "ready_s": round(ready, 2),
        "workers_rss_mb": round(sum(rss for rss, _ in memory) / 1024, 1),
        "workers_pss_mb": round(sum(pss for _, pss in memory) / 1024, 1),
        "bare_interpreters_s": round(bare_seconds, 2),
        "bare_interpreter_rss_mb": round(bare_rss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    result = in_data_dir(lambda: measure(arguments.workers))
    if arguments.json:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{arguments.workers} workers of a local pilot")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    table.add_row("ready / bare interpreters", f"{result['ready_s'] / result['bare_interpreters_s']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
