"""The master's scheduler alone at scale: what one task's end and the next pass cost, by the number of workers.

    python benchmarks/scale_scheduler.py [--nodes 16,4096] [--cores-per-node 128] [--json]

A scheduler with every worker joined (one per core) gets 100 000 tiny tasks (depth > 1: pipelined), then 100 000
more while the first 20 000 end one by one, each end followed by a scheduling pass, as the master does. Reported:
µs per end and pass, the first pass (100 000 tasks to idle workers), and the process's peak RSS. The pass should
not cost more with more workers.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

from scalems_like.overlay.scheduler import Scheduler


def measure(nodes: int, cores: int) -> dict[str, Any]:
    scheduler = Scheduler(width=1)
    for node in range(nodes):
        scheduler.add_node(f"node{node:05d}", cores, 0)
        for worker in range(cores):
            scheduler.add_worker(f"pilot.0000.worker.{node:04d}.w{worker:04d}", f"node{node:05d}")
    scheduler.observe_duration(0.0001)
    tasks = [{"uid": f"task.{index:07d}", "cores": 1, "gpus": 0, "ranks": 1} for index in range(200_000)]
    scheduler.submit(tasks[:100_000])
    start = time.perf_counter()
    given = [task["uid"] for queued in scheduler.schedule().values() for task in queued]
    first_pass = time.perf_counter() - start
    scheduler.submit(tasks[100_000:])
    start = time.perf_counter()
    for uid in given[:20_000]:
        scheduler.finished(uid)
        scheduler.schedule()
    per_end = (time.perf_counter() - start) / 20_000
    return {"nodes": nodes, "workers": nodes * cores, "first_pass_s": round(first_pass, 3),
            "end_and_pass_us": round(per_end * 1e6, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--nodes", default="16,4096")
    options.add_argument("--cores-per-node", type=int, default=128)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    for nodes in (int(item) for item in arguments.nodes.split(",")):
        result = measure(nodes, arguments.cores_per_node)
        print(json.dumps(result) if arguments.json else
              f"{result['workers']:>7} workers: {result['end_and_pass_us']:6.1f} µs per end and pass, first pass "
              f"{result['first_pass_s']:.3f} s, peak RSS {result['peak_rss_mb']} MB", flush=True)


if __name__ == "__main__":
    main()
