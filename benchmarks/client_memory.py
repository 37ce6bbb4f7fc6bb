"""Client memory per finished task, on a 2-core local pilot.

    python benchmarks/client_memory.py [--tasks 1000000] [--kind function|executable] [--batch 10000] [--json]

No-op tasks (``--kind function``: a function returning None; ``executable``: ``/bin/true``) run through the real
client (session, journal, I/O thread, flow control) and a real local pilot. They are submitted in batches of
``--batch`` as the run goes (at most two batches unfinished: a workflow that submits as it goes), or all in one
call with ``--batch 0``. Reported: the client's resident memory before the first submission (baseline), its peak
(``VmHWM``), bytes per finished task = (peak - baseline) / tasks, and tasks/s. The target is ≤ 2 KiB per finished
task at 1 000 000 tasks: finished tasks compact (see docs/performance.md). ``SCALEMS_LIKE_DATA_DIR`` is a
temporary directory (removed at the end) unless set.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from agent_memory import noop, status_kib
from data_dir import in_data_dir

import scalems_like as sl


def descriptions(kind: str, count: int) -> list[sl.TaskDescription]:
    if kind == "function":
        return [sl.TaskDescription(function=noop) for _ in range(count)]
    return [sl.TaskDescription(executable="/bin/true") for _ in range(count)]


def run_batches(session: sl.Session, kind: str, count: int, batch: int) -> list[sl.Task]:
    """Submit ``count`` tasks, ``batch`` at a time, waiting for the batch before last (all at once if 0)."""
    if batch <= 0:
        tasks = session.submit_tasks(descriptions(kind, count))
        session.wait_tasks(tasks)
        return tasks
    tasks: list[sl.Task] = []
    previous: list[sl.Task] = []
    for start in range(0, count, batch):
        submitted = session.submit_tasks(descriptions(kind, min(batch, count - start)))
        session.wait_tasks(previous)
        tasks.extend(submitted)
        previous = submitted
    session.wait_tasks(previous)
    return tasks


def measure(kind: str, count: int, batch: int) -> dict[str, float | int | str]:
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=36000))
        pilot.wait("ACTIVE", timeout=120)
        session.wait_tasks(session.submit_tasks(descriptions(kind, 100)))  # warm: every code path has run once
        gc.collect()
        baseline = status_kib("self", "VmRSS")
        start = time.perf_counter()
        tasks = run_batches(session, kind, count, batch)
        elapsed = time.perf_counter() - start
        peak = status_kib("self", "VmHWM")
        bad = [task for task in tasks if task.state is not sl.TaskState.DONE]
        if bad:
            raise SystemExit(f"{len(bad)} tasks did not succeed, e.g. {bad[0]}: {bad[0].reason}")
    return {
        "kind": kind,
        "tasks": count,
        "batch": batch,
        "baseline_rss_mb": baseline / 1024,
        "peak_rss_mb": peak / 1024,
        "bytes_per_finished_task": (peak - baseline) * 1024 / count,
        "tasks_per_s": count / elapsed,
    }


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--tasks", type=int, default=1_000_000)
    options.add_argument("--kind", choices=("function", "executable"), default="function")
    options.add_argument("--batch", type=int, default=10_000, help="tasks per submission (0: all at once)")
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    results = in_data_dir(lambda: measure(arguments.kind, arguments.tasks, arguments.batch))
    if arguments.json:
        print(json.dumps(results))
        return
    how = f"in batches of {arguments.batch}" if arguments.batch > 0 else "at once"
    print(f"{arguments.tasks} no-op {arguments.kind} tasks submitted {how} to a 2-core local pilot:")
    print(f"  client RSS before submission {results['baseline_rss_mb']:8.1f} MiB")
    print(f"  client peak RSS (VmHWM)      {results['peak_rss_mb']:8.1f} MiB")
    print(f"  per finished task            {results['bytes_per_finished_task']:8.0f} bytes")
    print(f"  tasks                        {results['tasks_per_s']:8.0f} /s")


if __name__ == "__main__":
    main()
